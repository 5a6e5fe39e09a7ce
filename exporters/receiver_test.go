package exporters_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/otlptest"
)

// startGRPCReceiver serves OTLP/gRPC on a loopback port and returns its
// base URL.
func startGRPCReceiver(t *testing.T) (*otlptest.Receiver, string) {
	r := otlptest.StartGRPC(t)
	return r, r.URL
}

// startHTTPReceiver serves OTLP/HTTP on a loopback port and returns its
// base URL.
func startHTTPReceiver(t *testing.T) (*otlptest.Receiver, string) {
	r := otlptest.StartHTTP(t)
	return r, r.URL
}

// deadAddress returns a loopback address nothing listens on.
func deadAddress(t *testing.T) string {
	t.Helper()
	lis, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	if err := lis.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, within, cond, "waiting for "+what)
}
