package middleware_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel"
	otelbaggage "go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/baggage"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
)

var globalsFresh = func() *atomic.Bool { var b atomic.Bool; b.Store(true); return &b }()

// TestGlobals is the only test of the package that touches the otel
// globals. It checks, in order: that without any global propagator the
// middleware propagates W3C baggage and trace context anyway, and that
// providers and propagator set after NewTelemetry are used.
func TestGlobals(t *testing.T) {
	if !globalsFresh.CompareAndSwap(true, false) {
		t.Skip("the otel globals delegate only once per process (-count > 1)")
	}
	tel := middleware.NewTelemetry() // before any otel.Set*
	op := driver.Operation{Kind: driver.OpPublish, System: "memory", Destination: "q"}
	m, _ := otelbaggage.NewMember("tenant", "acme")
	bag, _ := otelbaggage.New(m)
	ctx := otelbaggage.ContextWithBaggage(context.Background(), bag)

	msg := &broker.Message{Destination: "q"}
	if err := tel.WrapPublish(ok)(ctx, op, []*broker.Message{msg}); err != nil {
		t.Fatal(err)
	}
	if got := msg.Headers.Get("baggage"); got != "tenant=acme" {
		t.Errorf("no global propagator: baggage header %q, want the W3C default to carry tenant=acme", got)
	}

	// Baggage over the W3C limits arrives cut to the leading members that
	// fit, not empty (otel-go's propagation.Baggage drops it whole).
	parts := make([]string, 1000)
	for i := range parts {
		parts[i] = fmt.Sprintf("k%d=v%d", i, i)
	}
	in := &broker.Message{Destination: "q"}
	in.Headers.Set("baggage", strings.Join(parts, ","))
	var got otelbaggage.Baggage
	consume := tel.WrapConsume(func(ctx context.Context, _ driver.Operation, _ []*broker.Message) error {
		got = otelbaggage.FromContext(ctx)
		return nil
	})
	cop := driver.Operation{Kind: driver.OpConsume, System: "memory", Destination: "q"}
	if err := consume(context.Background(), cop, []*broker.Message{in}); err != nil {
		t.Fatal(err)
	}
	if got.Len() != baggage.MaxMembers || got.Member("k0").Value() != "v0" || got.Member("k63").Value() != "v63" {
		t.Errorf("no global propagator: 1,000 baggage members arrived as %d (k0=%q, k63=%q), want the first %d",
			got.Len(), got.Member("k0").Value(), got.Member("k63").Value(), baggage.MaxMembers)
	}

	rec := testutil.NewRecorder(t)
	otel.SetTracerProvider(rec.TracerProvider)
	otel.SetMeterProvider(rec.MeterProvider)
	otel.SetTextMapPropagator(propagation.TraceContext{}) // trace context only

	msg = &broker.Message{Destination: "q"}
	if err := tel.WrapPublish(ok)(ctx, op, []*broker.Message{msg}); err != nil {
		t.Fatal(err)
	}
	send := rec.SpanByName(t, "send q")
	sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), &msg.Headers))
	if sc.SpanID() != send.SpanContext().SpanID() {
		t.Errorf("message carries %s, want the send span recorded by the provider set later", sc.SpanID())
	}
	if v, found := msg.Headers.Lookup("baggage"); found {
		t.Errorf("baggage header %q written though the global propagator set later has no baggage", v)
	}
	if _, found := rec.Metric(t, "messaging.client.sent.messages"); !found {
		t.Errorf("no sent.messages from the meter provider set later")
	}
}
