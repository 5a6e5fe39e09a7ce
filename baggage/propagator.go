package baggage

import (
	"context"

	otelbaggage "go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"

	"github.com/tracebus/tracebus/broker"
)

// Propagator is a W3C baggage propagator, a drop-in replacement for
// propagation.Baggage that is deterministic on hostile input:
//
//	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, baggage.Propagator{})
//	tel := middleware.NewTelemetry(middleware.WithPropagators(prop))
//
// It reads and writes the same header format. It differs where otel-go's
// propagator is lossy or random:
//   - Extract keeps the leading members that fit the W3C limits, in header
//     order, where otel-go drops a whole header over MaxBytes bytes, and where
//     it drops random members when several baggage headers together exceed
//     MaxMembers members (otel-go merges them through a map);
//   - Inject writes members in a fixed order (the view's order, key order
//     for plain OpenTelemetry baggage) within the limits, and on
//     *broker.Headers it replaces a baggage header the message already has
//     (such as one forwarded from a consumed message) instead of leaving it
//     when the baggage is empty;
//   - drops are reported through otel.Handle at most once a minute per kind
//     of problem, with a count of what happened in between, instead of only
//     the first one in the process.
type Propagator struct{}

var _ propagation.TextMapPropagator = Propagator{}

// Inject writes the baggage a publish with ctx carries into carrier.
func (Propagator) Inject(ctx context.Context, carrier propagation.TextMapCarrier) {
	entries := currentEntries(ctx)
	if h, ok := carrier.(*broker.Headers); ok {
		h.Del(headerName)
	}
	if len(entries) > 0 {
		carrier.Set(headerName, encode(entries))
	}
}

// Extract returns a copy of parent carrying the baggage of carrier as
// OpenTelemetry baggage, or parent when carrier has none.
func (Propagator) Extract(parent context.Context, carrier propagation.TextMapCarrier) context.Context {
	var values []string
	if vg, ok := carrier.(propagation.ValuesGetter); ok {
		values = vg.Values(headerName)
	} else if v := carrier.Get(headerName); v != "" {
		values = []string{v}
	}
	if len(values) == 0 {
		return parent
	}
	entries := parseValues(values, "baggage: extract")
	if len(entries) == 0 {
		return parent
	}
	return otelbaggage.ContextWithBaggage(parent, otelBaggage(entries))
}

// Fields returns the header Inject writes.
func (Propagator) Fields() []string { return []string{headerName} }
