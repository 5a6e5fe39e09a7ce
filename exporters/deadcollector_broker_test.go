package exporters_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/exporters"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
)

// TestDeadCollectorBroker runs a traced broker whose telemetry goes to a
// collector that never answers: every publish and every consume still
// completes (spans are dropped, never waited for), Shutdown returns by its
// deadline, and no goroutine outlives it.
func TestDeadCollectorBroker(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "60000")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "10")
	endpoint, stop := startHangingGRPC(t)
	defer stop()

	ctx := context.Background()
	p, err := exporters.Setup(ctx, exporters.WithOTLP(exporters.ProtocolGRPC, endpoint), exporters.WithoutGlobal())
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(testutil.Memory(t), broker.WithMiddleware(middleware.NewTelemetry(
		middleware.WithTracerProvider(p.TracerProvider),
		middleware.WithMeterProvider(p.MeterProvider),
		middleware.WithPropagators(p.Propagator),
	)))
	const n = 3000 // more spans than the default queue of 2048 holds
	var handled atomic.Int32
	done := make(chan struct{})
	if err := b.Subscribe("orders", func(context.Context, *broker.Message) error {
		if handled.Add(1) == n {
			close(done)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := b.Publish(ctx, &broker.Message{Destination: "orders", Body: []byte{byte(i)}}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second): // a hang guard, not a speed check
		t.Fatalf("handled %d of %d messages: the dead collector held the broker up", handled.Load(), n)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}

	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	err = p.Shutdown(sctx)
	if !errors.Is(err, exporters.ErrNotExported) {
		t.Fatalf("Shutdown = %v, want a report of the spans it could not export", err)
	}
}
