package natsbroker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/testutil/conformance"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// suite describes the NATS transport to the shared suites: core NATS, or
// JetStream for every destination. Each call starts its own server (or
// uses TRACEBUS_NATS_URL); every transport the suite creates connects to
// it.
func suite(t *testing.T, jetStream bool) conformance.Suite {
	srv := natstest.New(t)
	s := conformance.Suite{
		New: func(t *testing.T) driver.Transport {
			var opts []natsbroker.Option
			if jetStream {
				opts = append(opts, natsbroker.WithJetStream())
			}
			return connect(t, srv, opts...)
		},
		Features: conformance.Features{
			Groups:     true,
			Batch:      true,
			Ordered:    true,
			Wildcards:  true,
			MessageID:  true,
			Concurrent: true,
			// Core NATS stores nothing: a message published while nobody
			// listens is gone, and a failed one is retried in place only.
			Persistent: jetStream,
		},
	}
	if jetStream {
		js := jetStreamClient(t, srv)
		s.Prepare = func(t *testing.T, dest string) { createStream(t, srv, js, dest, dest, dest+".>") }
	}
	return s
}

// connect returns a transport on its own connection to srv that keeps
// reconnecting quickly, as a service configured for a restartable server
// would. The broker that owns it closes it.
func connect(t testing.TB, srv *natstest.Server, opts ...natsbroker.Option) *natsbroker.Transport {
	t.Helper()
	opts = append([]natsbroker.Option{natsbroker.WithConnectOptions(
		natsgo.Name("tracebus-test"),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(50*time.Millisecond),
		natsgo.ReconnectJitter(0, 0),
		// nats.go prints asynchronous errors (a write to a server that
		// just went away) to stderr by default; they are expected here.
		natsgo.ErrorHandler(func(*natsgo.Conn, *natsgo.Subscription, error) {}),
	)}, opts...)
	tr, err := natsbroker.Connect(srv.URL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// newTransport is natsbroker.New for tests: nc stays the caller's.
func newTransport(t testing.TB, nc *natsgo.Conn, opts ...natsbroker.Option) *natsbroker.Transport {
	t.Helper()
	tr, err := natsbroker.New(nc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func jetStreamClient(t testing.TB, srv *natstest.Server) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(srv.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// createStream creates a file-backed stream. On an external server it is
// deleted when the test ends; an embedded server's store goes away with the
// test anyway, and deleting there would race the server: after deleting an
// account's last stream, nats-server (v2.15) removes the account's store
// directory in the background, which can make the next stream's creation
// fail with "error creating store for stream" (code 10049). On an external
// server, where streams are deleted, creation is retried on that error.
func createStream(t testing.TB, srv *natstest.Server, js jetstream.JetStream, name string, subjects ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := jetstream.StreamConfig{Name: name, Subjects: subjects, Storage: jetstream.FileStorage}
	for {
		_, err := js.CreateStream(ctx, cfg)
		var apiErr *jetstream.APIError
		if err == nil {
			break
		}
		if !errors.As(err, &apiErr) || apiErr.ErrorCode != errCodeStreamStoreFailed || ctx.Err() != nil {
			t.Fatalf("create stream %s: %v", name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	deleteStreamAfter(t, srv, js, name)
}

// errCodeStreamStoreFailed is JetStream's JSStreamStoreFailedF.
const errCodeStreamStoreFailed = 10049

// deleteStreamAfter deletes the stream when the test ends, on an external
// server only (see createStream).
func deleteStreamAfter(t testing.TB, srv *natstest.Server, js jetstream.JetStream, name string) {
	if srv.Embedded() {
		return
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = js.DeleteStream(ctx, name)
	})
}

func TestConformanceCore(t *testing.T) {
	conformance.TestTransport(t, suite(t, false))
}

func TestConformanceJetStream(t *testing.T) {
	conformance.TestTransport(t, suite(t, true))
}

func TestPullCore(t *testing.T) {
	conformance.TestPull(t, suite(t, false))
}

func TestPullJetStream(t *testing.T) {
	conformance.TestPull(t, suite(t, true))
}

func TestTelemetryCore(t *testing.T) {
	conformance.TestTelemetry(t, suite(t, false))
}

func TestTelemetryJetStream(t *testing.T) {
	conformance.TestTelemetry(t, suite(t, true))
}

func TestBaggageCore(t *testing.T) {
	conformance.TestBaggage(t, suite(t, false))
}

func TestBaggageJetStream(t *testing.T) {
	conformance.TestBaggage(t, suite(t, true))
}

func TestTypedCore(t *testing.T) {
	conformance.TestTyped(t, suite(t, false))
}

func TestTypedJetStream(t *testing.T) {
	conformance.TestTyped(t, suite(t, true))
}
