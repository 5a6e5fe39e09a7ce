//go:build unix

package broker_test

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/tracebus/tracebus/broker"
)

// SignalContext is cancelled by SIGTERM, which it catches instead of
// letting it end the process.
func TestSignalContext(t *testing.T) {
	ctx, stop := broker.SignalContext(context.Background())
	defer stop()
	must(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
	select {
	case <-ctx.Done():
	case <-time.After(time.Minute):
		t.Fatal("SIGTERM did not cancel the context")
	}
}
