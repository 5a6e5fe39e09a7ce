package baggage_test

import (
	"context"
	"fmt"
	"maps"
	"net/url"
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
	ctx := otelbaggage.ContextWithBaggage(context.Background(), otelBag(t,
		"tenant", "acme corp",
		"user", "7",
		"path", "a/b=c;d,e",
		"sum", "1+1 = 2",
		"discount", "50% off",
		"escaped", "%20 and %2B",
		"city", "Zürich café 東京",
		"spaces", "  lead and trail  ",
	))
	var h broker.Headers
	h.Set("uberctx-stale", "forwarded from an earlier hop")
	p.Inject(ctx, &h)
	for k, want := range map[string]string{
		"uberctx-tenant": "acme%20corp",
		"uberctx-sum":    "1%2B1%20%3D%202",
		"uberctx-city":   "Z%C3%BCrich%20caf%C3%A9%20%E6%9D%B1%E4%BA%AC",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q (space as %%20, plus as %%2B)", k, got, want)
		}
	}
	for _, k := range h.Keys() {
		if v := h.Get(k); strings.ContainsAny(v, " +") {
			t.Errorf("%s = %q: a space or a plus left unescaped reads differently in different Jaeger clients", k, v)
		}
	}
	if h.Get("uberctx-stale") != "" {
		t.Error("Inject kept a stale uberctx- header")
	}
	got := bagMap(otelbaggage.FromContext(p.Extract(context.Background(), &h)))
	want := map[string]string{
		"tenant": "acme corp", "user": "7", "path": "a/b=c;d,e", "sum": "1+1 = 2", "discount": "50% off",
		"escaped": "%20 and %2B", "city": "Zürich café 東京", "spaces": "  lead and trail  ",
	}
	if !maps.Equal(got, want) {
		t.Errorf("round trip = %v, want %v", got, want)
	}
}

// Other Jaeger decoders read what Inject writes as it was: url.QueryUnescape
// (jaeger-client-go, "+" is a space) and percent-decoding only
// (OpenTelemetry JS's decodeURIComponent, "+" is a plus) agree on it.
func TestJaegerPropagatorInjectReadsAlikeInJaegerDecoders(t *testing.T) {
	values := []string{"acme corp", "1+1 = 2", "50% off", "Zürich café", "a&b=c?d#e/f"}
	var kv []string
	for i, v := range values {
		kv = append(kv, fmt.Sprintf("k%d", i), v)
	}
	ctx := otelbaggage.ContextWithBaggage(context.Background(), otelBag(t, kv...))
	carrier := propagation.MapCarrier{}
	baggage.JaegerPropagator{}.Inject(ctx, carrier)
	for i, v := range values {
		raw := carrier.Get(fmt.Sprintf("uberctx-k%d", i))
		q, err := url.QueryUnescape(raw)
		if err != nil || q != v {
			t.Errorf("QueryUnescape(%q) = %q, %v; want %q", raw, q, err, v)
		}
		p, err := url.PathUnescape(raw)
		if err != nil || p != v {
			t.Errorf("PathUnescape(%q) = %q, %v; want %q", raw, p, err, v)
		}
	}
}

// What a Jaeger client sends: mixed-case header names, %-escaped or plain
// values; the members join the W3C baggage already extracted.
func TestJaegerPropagatorExtractsJaegerClientHeaders(t *testing.T) {
	carrier := propagation.MapCarrier{
		"Uberctx-Tenant":  "acme%20corp",
		"uberctx-sum":     "1+1%3D2",
		"uberctx-raw":     "c++ and c#",
		"uberctx-city":    "Z%C3%BCrich",
		"uberctx-plain":   "100%",
		"uberctx-half":    "50%%20off",
		"uberctx-":        "no key",
		"uberctx-bad key": "dropped",
		"baggage":         "ignored=by this propagator",
	}
	parent := otelbaggage.ContextWithBaggage(context.Background(), otelBag(t, "region", "eu", "tenant", "w3c"))
	got := bagMap(otelbaggage.FromContext(baggage.JaegerPropagator{}.Extract(parent, carrier)))
	want := map[string]string{
		"region": "eu", "tenant": "acme corp", "sum": "1+1=2", "raw": "c++ and c#", "city": "Zürich",
		"plain": "100%", "half": "50%%20off",
	}
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
