package baggage_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	otelbaggage "go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"

	"github.com/tracebus/tracebus/baggage"
	"github.com/tracebus/tracebus/broker"
)

func otelBag(t *testing.T, kv ...string) otelbaggage.Baggage {
	t.Helper()
	var ms []otelbaggage.Member
	for i := 0; i < len(kv); i += 2 {
		m, err := otelbaggage.NewMemberRaw(kv[i], kv[i+1])
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	b, err := otelbaggage.New(ms...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bagMap(b otelbaggage.Baggage) map[string]string {
	m := map[string]string{}
	for _, mem := range b.Members() {
		m[mem.Key()] = mem.Value()
	}
	return m
}

func TestJaegerPropagatorRoundTrip(t *testing.T) {
	var p baggage.JaegerPropagator
	ctx := otelbaggage.ContextWithBaggage(context.Background(), otelBag(t, "tenant", "acme corp", "user", "7", "path", "a/b=c;d,e"))
	var h broker.Headers
	h.Set("uberctx-stale", "forwarded from an earlier hop")
	p.Inject(ctx, &h)
	if got := h.Get("uberctx-tenant"); got != "acme+corp" {
		t.Errorf("uberctx-tenant = %q, want the URL-escaped value", got)
	}
	if h.Get("uberctx-stale") != "" {
		t.Error("Inject kept a stale uberctx- header")
	}
	got := bagMap(otelbaggage.FromContext(p.Extract(context.Background(), &h)))
	want := map[string]string{"tenant": "acme corp", "user": "7", "path": "a/b=c;d,e"}
	if !maps.Equal(got, want) {
		t.Errorf("round trip = %v, want %v", got, want)
	}
}

// What a Jaeger client sends: mixed-case header names, %-escaped or plain
// values; the members join the W3C baggage already extracted.
func TestJaegerPropagatorExtractsJaegerClientHeaders(t *testing.T) {
	carrier := propagation.MapCarrier{
		"Uberctx-Tenant":  "acme%20corp",
		"uberctx-plain":   "100%",
		"uberctx-":        "no key",
		"uberctx-bad key": "dropped",
		"baggage":         "ignored=by this propagator",
	}
	parent := otelbaggage.ContextWithBaggage(context.Background(), otelBag(t, "region", "eu", "tenant", "w3c"))
	got := bagMap(otelbaggage.FromContext(baggage.JaegerPropagator{}.Extract(parent, carrier)))
	want := map[string]string{"region": "eu", "tenant": "acme corp", "plain": "100%"}
	if !maps.Equal(got, want) {
		t.Errorf("extracted %v, want %v", got, want)
	}
	if ctx := (baggage.JaegerPropagator{}).Extract(parent, propagation.MapCarrier{"x": "y"}); ctx != parent {
		t.Error("Extract without uberctx- headers did not return parent")
	}
}

// A sender cannot size our memory or get past the W3C limits through
// uberctx- headers, and the members kept do not depend on header order.
func TestJaegerPropagatorHostile(t *testing.T) {
	carrier := propagation.MapCarrier{}
	for i := range 5000 {
		carrier[fmt.Sprintf("uberctx-k%04d", i)] = strings.Repeat("v", 200)
	}
	var first map[string]string
	for range 3 {
		got := bagMap(otelbaggage.FromContext(baggage.JaegerPropagator{}.Extract(context.Background(), carrier)))
		size := 0
		for k, v := range got {
			size += len(k) + 1 + len(v) + 1
		}
		if len(got) > baggage.MaxMembers || size-1 > baggage.MaxBytes || len(got) == 0 {
			t.Fatalf("%d members, %d bytes: outside the W3C limits", len(got), size-1)
		}
		if first == nil {
			first = got
		} else if !maps.Equal(first, got) {
			t.Fatalf("kept members differ between runs: %v vs %v", slices.Sorted(maps.Keys(first)), slices.Sorted(maps.Keys(got)))
		}
	}
	if _, ok := first["k0000"]; !ok {
		t.Errorf("members are not taken in key order: %v", slices.Sorted(maps.Keys(first)))
	}
}
