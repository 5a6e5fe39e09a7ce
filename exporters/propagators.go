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
// with two differences:
//   - "baggage" is tracebus's baggage.Propagator rather than otel-go's
//     propagation.Baggage: otel-go returns no baggage at all for a header
//     over the W3C limit of 8,192 bytes and reports that only once per
//     process, where baggage.Propagator keeps the leading members that fit
//     and reports every cut (rate-limited);
//   - "jaegerbaggage" is Jaeger's native uberctx-{key} baggage headers,
//     which the contrib "jaeger" propagator does not carry.
//
// Both are handled here, in the order listed, rather than registered with
// autoprop, whose registry is global: importing this package changes
// nothing for other users of autoprop. Without the variable, W3C Trace
// Context and baggage.Propagator are used; "none" propagates nothing;
// unknown names are reported through otel.Handle and skipped, and when no
// name is known the default is used, as autoprop does.
func envPropagator() propagation.TextMapPropagator {
	def := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, baggage.Propagator{})
	var names []string
	for _, n := range strings.Split(os.Getenv("OTEL_PROPAGATORS"), ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return def
	}
	if slices.Contains(names, "none") {
		return propagation.NewCompositeTextMapPropagator()
	}
	var (
		props   []propagation.TextMapPropagator
		unknown []string
	)
	for _, name := range names {
		switch name {
		case "baggage":
			props = append(props, baggage.Propagator{})
		case jaegerBaggageName:
			props = append(props, baggage.JaegerPropagator{})
		default:
			p, err := autoprop.TextMapPropagator(name)
			if err != nil || p == nil {
				unknown = append(unknown, name)
				continue
			}
			props = append(props, p)
		}
	}
	if len(unknown) > 0 {
		otel.Handle(fmt.Errorf("exporters: OTEL_PROPAGATORS: unknown propagator %s", strings.Join(unknown, ",")))
	}
	switch len(props) {
	case 0:
		return def
	case 1:
		return props[0]
	default:
		return propagation.NewCompositeTextMapPropagator(props...)
	}
}
