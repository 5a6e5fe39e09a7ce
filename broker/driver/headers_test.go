package driver_test

import (
	"slices"
	"testing"

	"go.opentelemetry.io/otel/propagation"

	"github.com/tracebus/tracebus/broker/driver"
)

var (
	_ propagation.TextMapCarrier = (*driver.Headers)(nil)
	_ propagation.ValuesGetter   = (*driver.Headers)(nil)
)

func TestHeadersCaseInsensitiveReads(t *testing.T) {
	var h driver.Headers
	h.Set("Traceparent", "a")
	if got := h.Get("traceparent"); got != "a" {
		t.Fatalf("Get lower-case = %q, want a", got)
	}
	if _, ok := h.Lookup("TRACEPARENT"); !ok {
		t.Fatal("Lookup upper-case found nothing")
	}
	h.Set("traceparent", "b")
	if h.Len() != 1 || h.Get("TraceParent") != "b" {
		t.Fatalf("Set did not replace across case: %v", h)
	}
	if k := h.Keys(); !slices.Equal(k, []string{"traceparent"}) {
		t.Fatalf("Set must keep the case it was given: %q", k)
	}
}

func TestHeadersDuplicates(t *testing.T) {
	var h driver.Headers
	h.Add("x", "1")
	h.Add("y", "keep")
	h.Add("X", "2")
	if got := h.Values("x"); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("Values = %q", got)
	}
	if h.Get("x") != "1" {
		t.Fatalf("Get returns the first value, got %q", h.Get("x"))
	}
	if k := h.Keys(); !slices.Equal(k, []string{"x", "y"}) {
		t.Fatalf("Keys = %q, want distinct keys in order", k)
	}
	h.Set("x", "3")
	if !slices.Equal(h, driver.Headers{{"x", "3"}, {"y", "keep"}}) {
		t.Fatalf("Set must collapse duplicates in place: %v", h)
	}
	h.Del("X")
	if !slices.Equal(h, driver.Headers{{"y", "keep"}}) {
		t.Fatalf("Del: %v", h)
	}
}

func TestHeadersCloneIsIndependent(t *testing.T) {
	h := driver.Headers{{"a", "1"}}
	c := h.Clone()
	c.Set("a", "2")
	if h.Get("a") != "1" {
		t.Fatal("Clone shares storage")
	}
	var zero driver.Headers
	if zero.Clone() != nil || zero.Get("a") != "" || zero.Keys() == nil {
		t.Fatal("zero Headers must be usable")
	}
}

func TestPropagatorRoundTripThroughHeaders(t *testing.T) {
	// Other languages write lower-case keys; extraction must find them
	// whatever the case.
	h := driver.Headers{{"TRACEPARENT", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	ctx := propagation.TraceContext{}.Extract(t.Context(), &h)
	var out driver.Headers
	propagation.TraceContext{}.Inject(ctx, &out)
	if out.Get("traceparent") != h.Get("traceparent") || out.Keys()[0] != "traceparent" {
		t.Fatalf("round trip gave %v", out)
	}
}

func FuzzHeaders(f *testing.F) {
	f.Add("Key", "value", "key")
	f.Add("", "\x00\xff", "\xff")
	f.Fuzz(func(t *testing.T, k, v, lookup string) {
		var h driver.Headers
		h.Add(k, v)
		h.Set(lookup, v)
		h.Add(k, v)
		_ = h.Values(k)
		_ = h.Keys()
		h.Del(lookup)
		if _, ok := h.Lookup(lookup); ok {
			t.Fatalf("%q still present after Del", lookup)
		}
	})
}

// TestHeadersExactCaseFirst checks the rule for keys present in several
// cases: the exact case asked for wins, whatever the order.
func TestHeadersExactCaseFirst(t *testing.T) {
	for _, h := range []driver.Headers{
		{{Key: "TRACEPARENT", Value: "garbage"}, {Key: "traceparent", Value: "valid"}},
		{{Key: "traceparent", Value: "valid"}, {Key: "TRACEPARENT", Value: "garbage"}},
	} {
		if got := h.Get("traceparent"); got != "valid" {
			t.Errorf("%v: Get = %q, want the exact-case value", h, got)
		}
		if got := h.Values("traceparent"); len(got) != 2 || got[0] != "valid" || got[1] != "garbage" {
			t.Errorf("%v: Values = %q, want the exact-case value first", h, got)
		}
		if got, _ := h.Lookup("Traceparent"); got != h[0].Value {
			t.Errorf("%v: Lookup of a case nobody wrote = %q, want the first", h, got)
		}
	}
}
