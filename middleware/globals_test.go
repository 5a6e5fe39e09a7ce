package middleware_test

import (
	"context"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel"
	otelbaggage "go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/broker"
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
	op := broker.Operation{Kind: broker.OpPublish, System: "memory", Destination: "q"}
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
