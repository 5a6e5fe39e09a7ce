package broker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/testutil"
)

// A second Close honours its own context while the first one is still
// draining: it must not block until the first call returns.
func TestSecondCloseHonoursItsContext(t *testing.T) {
	b := broker.New(testutil.Memory(t))
	started := make(chan struct{})
	release := make(chan struct{})
	var once bool
	if err := b.Subscribe("slow", func(context.Context, *broker.Message) error {
		if !once {
			once = true
			close(started)
		}
		<-release
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer close(release)
	if err := b.Publish(t.Context(), &broker.Message{Destination: "slow"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, started, "handler did not start")

	first := make(chan error, 1)
	go func() { first <- b.Close(context.Background()) }()
	// The first Close has begun once subscribing fails with ErrClosed.
	deadline := time.Now().Add(time.Minute)
	for !errors.Is(b.Subscribe("probe", noop), broker.ErrClosed) {
		if time.Now().After(deadline) {
			t.Fatal("the first Close did not begin")
		}
		time.Sleep(time.Millisecond)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	second := make(chan error, 1)
	go func() { second <- b.Close(ctx) }()
	select {
	case err := <-second:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("second close: %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("second Close with a cancelled context blocked behind the first one")
	}
	if len(first) != 0 {
		t.Fatal("the first Close returned while the handler was still running")
	}
}

func waitFor(t *testing.T, ch <-chan struct{}, msg string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatal(msg)
	}
}
