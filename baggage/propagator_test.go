package baggage

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"

	otelbaggage "go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"

	"github.com/tracebus/tracebus/broker"
)

func TestPropagatorInteroperatesWithOTel(t *testing.T) {
	src := bag(t, "foo", "bar", "odd", "a b,c;d=é%")
	ctx := otelbaggage.ContextWithBaggage(context.Background(), src)

	var ours, theirs broker.Headers
	Propagator{}.Inject(ctx, &ours)
	propagation.Baggage{}.Inject(ctx, &theirs)
	if got, want := ours.Get("baggage"), "foo=bar,odd=a%20b%2Cc%3Bd=%C3%A9%25"; got != want {
		t.Errorf("Inject wrote %q, want %q", got, want)
	}
	for name, h := range map[string]*broker.Headers{"ours": &ours, "theirs": &theirs} {
		a := otelMap(Propagator{}.Extract(context.Background(), h))
		b := otelMap(propagation.Baggage{}.Extract(context.Background(), h))
		want := map[string]string{"foo": "bar", "odd": "a b,c;d=é%"}
		wantMap(t, name+" read by Propagator", a, want)
		wantMap(t, name+" read by propagation.Baggage", b, want)
	}

	// A carrier that is not broker.Headers.
	hh := propagation.HeaderCarrier(http.Header{})
	Propagator{}.Inject(ctx, hh)
	wantMap(t, "http round trip", otelMap(Propagator{}.Extract(context.Background(), hh)),
		map[string]string{"foo": "bar", "odd": "a b,c;d=é%"})
	if got := (Propagator{}).Fields(); len(got) != 1 || got[0] != "baggage" {
		t.Errorf("Fields = %v", got)
	}
}

func TestPropagatorInjectReplacesStaleHeader(t *testing.T) {
	h := broker.Headers{{Key: "baggage", Value: "stale=1"}, {Key: "Baggage", Value: "stale=2"}}
	ctx := contextWithDelivery(context.Background(), []otelbaggage.Baggage{bag(t, "stale", "1")}, false)
	FromContext(ctx).Clear()
	Propagator{}.Inject(ctx, &h)
	if h.Len() != 0 {
		t.Errorf("headers after injecting cleared baggage: %v", h)
	}
	if err := FromContext(ctx).Set("fresh", "1"); err != nil {
		t.Fatal(err)
	}
	h = broker.Headers{{Key: "baggage", Value: "stale=1"}}
	Propagator{}.Inject(ctx, &h)
	if got := h.Values("baggage"); len(got) != 1 || got[0] != "fresh=1" {
		t.Errorf("baggage headers %q, want [fresh=1]", got)
	}
}

// TestPropagatorDeterministic is the case otel-go cannot make deterministic:
// two headers that together hold more than 64 members.
func TestPropagatorDeterministic(t *testing.T) {
	handled(t) // silence and restore the error handler
	var first, second []string
	for i := range 40 {
		first = append(first, fmt.Sprintf("a%02d=1", i))
		second = append(second, fmt.Sprintf("b%02d=2", i))
	}
	var h broker.Headers
	h.Add("baggage", strings.Join(first, ","))
	h.Add("baggage", strings.Join(second, ","))
	want := otelMap(Propagator{}.Extract(context.Background(), &h))
	if len(want) != MaxMembers || want["b23"] != "2" || want["b24"] != "" {
		t.Fatalf("kept %d members: %v", len(want), want)
	}
	for range 20 {
		if got := otelMap(Propagator{}.Extract(context.Background(), &h)); !maps.Equal(got, want) {
			t.Fatalf("extraction differs between runs: %v vs %v", got, want)
		}
	}

	// A header over 8192 bytes keeps its leading members.
	big := strings.Repeat("x", 3000)
	h = broker.Headers{{Key: "baggage", Value: "a=" + big + ",b=" + big + ",c=" + big}}
	got := otelMap(Propagator{}.Extract(context.Background(), &h))
	if len(got) != 2 || got["a"] != big || got["b"] != big {
		t.Errorf("10 KB header: kept %d members", len(got))
	}
	if otelbaggage.FromContext(propagation.Baggage{}.Extract(context.Background(), &h)).Len() != 0 {
		t.Log("otel-go now keeps part of an oversized header; update the doc of Propagator")
	}
}
