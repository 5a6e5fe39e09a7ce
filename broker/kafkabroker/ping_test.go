package kafkabroker_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/testutil/kafkatest"
)

// Ping asks a seed broker for metadata: it succeeds against a running
// cluster, fails with broker.ErrUnavailable once the cluster is gone
// (however recently the transport saw it), and reports broker.ErrClosed
// after Close.
func TestPing(t *testing.T) {
	c := kafkatest.New(t)
	if c.External() {
		t.Skip("stops the cluster; needs the in-process one")
	}
	tr := mustTransport(t, c)
	if err := tr.Ping(t.Context()); err != nil {
		t.Fatalf("ping: %v", err)
	}
	c.Close()
	if err := tr.Ping(t.Context()); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("ping after the cluster stopped: %v, want ErrUnavailable", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := tr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tr.Ping(t.Context()); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("ping after close: %v, want ErrClosed", err)
	}
}
