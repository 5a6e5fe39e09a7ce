package exporters_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/exporters"
	"github.com/tracebus/tracebus/testutil"
)

// TestDeadCollectorBroker runs a traced broker whose telemetry goes to a
// collector that never answers: every publish and every consume still
// completes (spans are dropped, never waited for), Shutdown returns by its
// deadline, and no goroutine outlives it.
func TestDeadCollectorBroker(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	endpoint, stop := startHangingGRPC(t)
	defer stop()

	ctx := context.Background()
	b, p, handled := otlpBroker(t, endpoint)
	const n = 3000 // more spans than the default queue of 2048 holds
	for i := range n {
		if err := b.Publish(ctx, &broker.Message{Destination: "orders", Body: []byte{byte(i)}}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	// A hang guard, not a speed check.
	testutil.Eventually(t, time.Minute, func() bool { return handled.Load() == n },
		"every message handled: the dead collector must not hold the broker up")
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}

	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := p.Shutdown(sctx); !errors.Is(err, exporters.ErrNotExported) {
		t.Fatalf("Shutdown = %v, want a report of the spans it could not export", err)
	}
}
