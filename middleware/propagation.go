package middleware

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	"go.opentelemetry.io/otel"
	otelbaggage "go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/baggage"
	"github.com/tracebus/tracebus/broker"
)

// defaultPropagator is used while no global propagator was set: W3C Trace
// Context, and W3C Baggage through baggage.Propagator, which cuts baggage
// over the W3C limits deterministically (and reports it) where otel-go's
// propagation.Baggage drops it whole.
var defaultPropagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(
	propagation.TraceContext{}, baggage.Propagator{})

// unsetGlobal is the propagator otel.GetTextMapPropagator returns until
// otel.SetTextMapPropagator is first called: a delegating no-op. It is
// recorded only when it is a pointer (so comparing it with any propagator
// cannot panic) that injects no fields; if a propagator was already set
// when this package was initialised, unsetGlobal stays nil and the global
// is always used.
var unsetGlobal = func() propagation.TextMapPropagator {
	p := otel.GetTextMapPropagator()
	if reflect.TypeOf(p).Kind() == reflect.Pointer && len(p.Fields()) == 0 {
		return p
	}
	return nil
}()

// propagator returns the configured propagator, else the global one, else
// (no global was ever set) W3C Trace Context + Baggage.
func (t *Telemetry) propagator() propagation.TextMapPropagator {
	if t.cfg.propagator != nil {
		return t.cfg.propagator
	}
	p := otel.GetTextMapPropagator()
	if unsetGlobal != nil && p == unsetGlobal {
		return defaultPropagator
	}
	return p
}

// inject writes the trace context and baggage of ctx into h with the
// propagator, after deleting whatever the propagator's fields already held.
// A message being forwarded (a dead letter, a handler re-publishing what it
// received) still carries the previous hop's traceparent and baggage: left
// there, a stale baggage header would survive when ctx has none (the W3C
// propagator writes nothing for empty baggage), and a context the
// propagator does not overwrite would attach the next hop to the wrong
// trace. So tracebus always replaces the creation context instead of
// keeping one found in the headers.
//
// A propagator that panics is reported through otel.Handle and the message
// goes out without context: telemetry must not fail a publish.
func (t *Telemetry) inject(ctx context.Context, h *broker.Headers) {
	defer func() {
		if r := recover(); r != nil {
			otel.Handle(fmt.Errorf("tracebus/middleware: inject: propagator panicked: %v", r))
		}
	}()
	p := t.propagator()
	if h.Len() > 0 {
		for _, f := range p.Fields() {
			h.Del(f)
		}
	}
	p.Inject(ctx, h)
}

// extract reads the creation context and baggage a message carries. It
// extracts onto an empty context so that neither can be confused with what
// the delivery context already holds. Missing, malformed or hostile headers
// give an invalid span context and empty baggage, never an error: the
// message is processed all the same, under a root span.
func (t *Telemetry) extract(h *broker.Headers) (sc trace.SpanContext, bag otelbaggage.Baggage) {
	if h.Len() == 0 {
		return trace.SpanContext{}, otelbaggage.Baggage{}
	}
	defer func() {
		if r := recover(); r != nil {
			otel.Handle(fmt.Errorf("tracebus/middleware: extract: propagator panicked: %v", r))
			sc, bag = trace.SpanContext{}, otelbaggage.Baggage{}
		}
	}()
	var carrier propagation.TextMapCarrier = h
	if ambiguousTraceparent(*h) {
		carrier = withoutTraceContext{h}
	}
	ctx := t.propagator().Extract(context.Background(), carrier)
	return trace.SpanContextFromContext(ctx), otelbaggage.FromContext(ctx)
}

// ambiguousTraceparent reports whether h holds two different traceparent
// values under the exact key. W3C Trace Context treats several traceparent
// headers as invalid (HTTP would join them into one unparsable value), and
// its test suite expects a new trace then; taking the first would let
// whoever added a header choose the parent. The message is processed under
// a new root span; its baggage is still read.
func ambiguousTraceparent(h broker.Headers) bool {
	first, seen := "", false
	for _, kv := range h {
		if kv.Key != traceparent {
			continue
		}
		if seen && kv.Value != first {
			return true
		}
		first, seen = kv.Value, true
	}
	return false
}

const traceparent = "traceparent"

// withoutTraceContext hides the W3C trace context headers of a message
// from the propagator.
type withoutTraceContext struct{ h *broker.Headers }

func (c withoutTraceContext) hidden(key string) bool {
	return strings.EqualFold(key, traceparent) || strings.EqualFold(key, "tracestate")
}

func (c withoutTraceContext) Get(key string) string {
	if c.hidden(key) {
		return ""
	}
	return c.h.Get(key)
}

func (c withoutTraceContext) Values(key string) []string {
	if c.hidden(key) {
		return nil
	}
	return c.h.Values(key)
}

func (c withoutTraceContext) Set(string, string) {}

func (c withoutTraceContext) Keys() []string {
	keys := c.h.Keys()
	out := keys[:0]
	for _, k := range keys {
		if !c.hidden(k) {
			out = append(out, k)
		}
	}
	return out
}
