package natstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// TestRestartKeepsPortAndStore restarts the embedded server: the client
// reconnects on its own to the same URL, and a stream with its message is
// still there.
func TestRestartKeepsPortAndStore(t *testing.T) {
	srv := natstest.New(t)
	if !srv.Embedded() {
		t.Skip("restart needs the embedded server")
	}
	url := srv.URL()
	nc := srv.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "KEEP", Subjects: []string{"keep"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "keep", []byte("x")); err != nil {
		t.Fatal(err)
	}

	srv.Restart(t)
	if srv.URL() != url {
		t.Fatalf("URL changed from %s to %s", url, srv.URL())
	}
	for !nc.IsConnected() {
		select {
		case <-ctx.Done():
			t.Fatal("client did not reconnect")
		case <-time.After(10 * time.Millisecond):
		}
	}
	// JetStream answers once the restarted server has recovered its
	// store, which takes a while on a loaded machine.
	var info *jetstream.StreamInfo
	for {
		stream, err := js.Stream(ctx, "KEEP")
		if err == nil {
			if info, err = stream.Info(ctx); err == nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the stream is not back after the restart: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages after the restart, want 1", info.State.Msgs)
	}
}

func TestRun(t *testing.T) {
	srv, err := natstest.Start()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := srv.Dial()
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	srv.Shutdown()
	srv.Shutdown() // twice is fine
	if _, err := srv.Dial(); err == nil {
		t.Fatal("dialled a server that was shut down")
	}
}
