// Package baggagehook gives the telemetry middleware the one part of package
// baggage that only a consume path calls, so that it stays out of the API
// service authors read.
package baggagehook

import (
	"context"

	otelbaggage "go.opentelemetry.io/otel/baggage"
)

// ContextWithDelivery returns ctx carrying the baggage of one delivery. Package
// baggage sets it when it is initialised; its documentation is there
// (contextWithDelivery).
var ContextWithDelivery func(ctx context.Context, perMessage []otelbaggage.Baggage, batch bool) context.Context
