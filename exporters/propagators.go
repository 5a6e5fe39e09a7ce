package exporters

import (
	"go.opentelemetry.io/contrib/propagators/autoprop"

	"github.com/tracebus/tracebus/baggage"
)

func init() {
	// OTEL_PROPAGATORS=...,jaegerbaggage carries baggage as Jaeger's
	// native uberctx-{key} headers, beside the contrib "jaeger"
	// propagator, which carries only the trace context.
	autoprop.RegisterTextMapPropagator("jaegerbaggage", baggage.JaegerPropagator{})
}
