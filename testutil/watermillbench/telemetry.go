package main

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/middleware"
)

// telemetry returns the broker option of the traced variant, the telemetry
// middleware with an SDK that samples every trace (a batch span processor
// exporting nowhere, metrics aggregated by a manual reader), as in the
// end-to-end benchmarks of the transports, and the function that shuts the
// SDK down.
func telemetry() (broker.Option, func()) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	opt := broker.WithMiddleware(middleware.NewTelemetry(middleware.WithTracerProvider(tp),
		middleware.WithMeterProvider(mp), middleware.WithPropagators(prop)))
	return opt, func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	}
}
