package exporters_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/exporters"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
)

// otlpBroker starts a broker on the memory transport, traced through
// exporters.Setup to the OTLP/gRPC collector at endpoint, with a
// subscription to "orders" that counts what it handles. Exports wait up to
// a minute (so that a collector that never answers holds a batch) and the
// batch processor exports every 10ms. The caller closes the broker and
// shuts the providers down.
func otlpBroker(tb testing.TB, endpoint string) (*broker.Broker, *exporters.Providers, *atomic.Int64) {
	tb.Helper()
	tb.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "60000")
	tb.Setenv("OTEL_BSP_SCHEDULE_DELAY", "10")
	ctx := context.Background()
	p, err := exporters.Setup(ctx, exporters.WithOTLP(exporters.ProtocolGRPC, endpoint), exporters.WithoutGlobal())
	if err != nil {
		tb.Fatal(err)
	}
	b := broker.New(testutil.Memory(tb), broker.WithMiddleware(middleware.NewTelemetry(
		middleware.WithTracerProvider(p.TracerProvider),
		middleware.WithMeterProvider(p.MeterProvider),
		middleware.WithPropagators(p.Propagator),
	)))
	handled := new(atomic.Int64)
	if err := b.Subscribe("orders", func(context.Context, *broker.Message) error {
		handled.Add(1)
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	return b, p, handled
}
