package baggage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	otelbaggage "go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"

	"github.com/tracebus/tracebus/broker"
)

func TestFromHeadersReadsW3CPropagator(t *testing.T) {
	want := map[string]string{"foo": "bar", "bar": "baz", "odd": "a b,c;d=é%"}
	ctx := otelbaggage.ContextWithBaggage(context.Background(),
		bag(t, "foo", "bar", "bar", "baz", "odd", "a b,c;d=é%"))
	var h broker.Headers
	propagation.Baggage{}.Inject(ctx, &h)
	wantMap(t, "FromHeaders", FromHeaders(h).All(), want)
}

func TestInjectRoundTrip(t *testing.T) {
	ctx, err := ContextWith(context.Background(), map[string]string{"b": "2", "a": "1 %"})
	if err != nil {
		t.Fatal(err)
	}
	h := broker.Headers{{Key: "Baggage", Value: "stale=1"}}
	Inject(ctx, &h)
	if got, want := h.Values("baggage"), []string{"a=1%20%25,b=2"}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("baggage headers %q, want %q", got, want)
	}
	// The plain W3C propagator reads it back.
	back := otelbaggage.FromContext(propagation.Baggage{}.Extract(context.Background(), &h))
	if back.Member("a").Value() != "1 %" || back.Member("b").Value() != "2" || back.Len() != 2 {
		t.Errorf("propagator read %v", back)
	}

	// Empty baggage removes the header.
	Inject(context.Background(), &h)
	if _, ok := h.Lookup("baggage"); ok {
		t.Errorf("Inject without baggage left %q", h.Get("baggage"))
	}
}

func TestInjectCarriesHandlerEdits(t *testing.T) {
	ctx := contextWithDelivery(context.Background(), []otelbaggage.Baggage{bag(t, "foo", "bar")}, false)
	b := FromContext(ctx)
	b.Remove("foo")
	if err := b.Set("x", "y"); err != nil {
		t.Fatal(err)
	}
	var h broker.Headers
	Inject(ctx, &h)
	if got := h.Get("baggage"); got != "x=y" {
		t.Errorf("baggage header %q, want x=y", got)
	}
}

func TestContextWith(t *testing.T) {
	if _, err := ContextWith(context.Background(), map[string]string{"bad key": "v"}); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("invalid key: %v", err)
	}
	base := otelbaggage.ContextWithBaggage(context.Background(), bag(t, "tenant", "acme", "z", "1"))
	ctx, err := ContextWith(base, map[string]string{"tenant": "other", "added": "x"})
	if err != nil {
		t.Fatal(err)
	}
	b := FromContext(ctx)
	if got, want := b.String(), "tenant=other,z=1,added=x"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	wantMap(t, "OTel baggage", otelMap(ctx), map[string]string{"tenant": "other", "z": "1", "added": "x"})
	// The view is attached: edits are carried.
	b.Remove("z")
	wantMap(t, "publish", otelMap(ContextForPublish(ctx)), map[string]string{"tenant": "other", "added": "x"})

	// In a handler: built on the view's current members; the handler's view
	// is not changed.
	hctx := contextWithDelivery(context.Background(), []otelbaggage.Baggage{bag(t, "foo", "bar")}, false)
	FromContext(hctx).Remove("foo")
	if err := FromContext(hctx).Set("edited", "1"); err != nil {
		t.Fatal(err)
	}
	wctx, err := ContextWith(hctx, map[string]string{"scoped": "2"})
	if err != nil {
		t.Fatal(err)
	}
	wantMap(t, "ContextWith in a handler", otelMap(ContextForPublish(wctx)), map[string]string{"edited": "1", "scoped": "2"})
	wantMap(t, "handler view", FromContext(hctx).All(), map[string]string{"edited": "1"})

	// Over the limit: an error, ctx unchanged.
	many := map[string]string{}
	for i := range MaxMembers + 1 {
		many[fmt.Sprintf("k%02d", i)] = "v"
	}
	got, err := ContextWith(base, many)
	if !errors.Is(err, ErrLimit) || got != base {
		t.Errorf("65 members: err %v, ctx changed %v", err, got != base)
	}
}

func TestFromHeadersHostile(t *testing.T) {
	var many []string
	for i := range MaxMembers + 1 {
		many = append(many, fmt.Sprintf("k%02d=v", i))
	}
	huge := strings.Repeat("x", 3000)
	for _, tc := range []struct {
		name    string
		headers []string
		keys    string // kept keys in order
		err     error  // reported through otel.Handle, nil for none
	}{
		{"65 members", []string{strings.Join(many, ",")}, keysUpTo(MaxMembers), ErrLimit},
		{"65 members over two headers", []string{strings.Join(many[:40], ","), strings.Join(many[40:], ",")}, keysUpTo(MaxMembers), ErrLimit},
		{"10 KB header", []string{"a=" + huge + ",b=" + huge + ",c=" + huge + ",d=small"}, "a,b,d", ErrLimit},
		{"one member over 8 KB", []string{"big=" + strings.Repeat("y", 9000) + ",ok=1"}, "ok", ErrLimit},
		{"malformed syntax", []string{"novalue,=v,k v=1,good=1,,;;,x=1;p q"}, "good", ErrMalformed},
		{"invalid percent-encoding", []string{"bad=%zz,half=%4,ok=%41"}, "ok", ErrMalformed},
		{"value with forbidden characters", []string{`q="quoted",ok=1`}, "ok", ErrMalformed},
		{"duplicates: later wins in place", []string{"a=1,b=2", "a=3"}, "a,b", nil},
		{"properties kept", []string{"a=1;ttl=3;flag"}, "a", nil},
		{"spaces trimmed", []string{" a = 1 ,\tb=2\t"}, "a,b", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := handled(t)
			var h broker.Headers
			for _, v := range tc.headers {
				h.Add("baggage", v)
			}
			first := FromHeaders(h)
			if got := strings.Join(first.Keys(), ","); got != tc.keys {
				t.Errorf("kept %s, want %s", got, tc.keys)
			}
			if again := FromHeaders(h); again.String() != first.String() {
				t.Errorf("not deterministic: %q then %q", first.String(), again.String())
			}
			if n := len(first.String()); n > MaxBytes || first.Len() > MaxMembers {
				t.Errorf("over the limits: %d members, %d bytes", first.Len(), n)
			}
			got := errs()
			if tc.err == nil && len(got) > 0 {
				t.Errorf("otel.Handle got %v", got)
			}
			if tc.err != nil && (len(got) == 0 || !errors.Is(got[0], tc.err)) {
				t.Errorf("otel.Handle got %v, want %v", got, tc.err)
			}
		})
	}
	b := FromHeaders(broker.Headers{{Key: "baggage", Value: "a=1,b=2,a=3;p"}})
	if got := b.String(); got != "a=3;p,b=2" {
		t.Errorf("String = %q, want a=3;p,b=2", got)
	}
	if b.Get("ok") != "" || FromHeaders(broker.Headers{{Key: "baggage", Value: "ok=%41"}}).Get("ok") != "A" {
		t.Error("percent-decoding")
	}
}

func keysUpTo(n int) string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%02d", i)
	}
	return strings.Join(keys, ",")
}
