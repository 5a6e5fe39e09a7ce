package exporters

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"go.opentelemetry.io/contrib/propagators/autoprop"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/tracebus/tracebus/baggage"
)

// jaegerBaggageName selects baggage.JaegerPropagator in OTEL_PROPAGATORS.
const jaegerBaggageName = "jaegerbaggage"

// envPropagator is the propagator OTEL_PROPAGATORS names, through autoprop,
// plus "jaegerbaggage": Jaeger's native uberctx-{key} baggage headers, which
// the contrib "jaeger" propagator does not carry. The name is handled here,
// in the order it is listed, rather than registered with autoprop, whose
// registry is global: importing this package changes nothing for other
// users of autoprop. Unknown names are reported through otel.Handle and
// skipped, as autoprop does.
func envPropagator() propagation.TextMapPropagator {
	names := strings.Split(os.Getenv("OTEL_PROPAGATORS"), ",")
	for i := range names {
		names[i] = strings.TrimSpace(names[i])
	}
	if !slices.Contains(names, jaegerBaggageName) {
		return autoprop.NewTextMapPropagator()
	}
	var props []propagation.TextMapPropagator
	for _, n := range names {
		switch n {
		case "", "none":
		case jaegerBaggageName:
			props = append(props, baggage.JaegerPropagator{})
		default:
			p, err := autoprop.TextMapPropagator(n)
			if err != nil {
				otel.Handle(fmt.Errorf("exporters: OTEL_PROPAGATORS: %w", err))
				continue
			}
			props = append(props, p)
		}
	}
	return propagation.NewCompositeTextMapPropagator(props...)
}
