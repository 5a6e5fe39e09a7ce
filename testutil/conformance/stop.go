package conformance

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/internal/testkit"
)

// control returns the Subscription of dest on b, failing t on error.
func control(t *testing.T, b *broker.Broker, dest string) *broker.Subscription {
	t.Helper()
	sub, err := b.Subscription(dest)
	if err != nil {
		t.Fatalf("subscription %s: %v", dest, err)
	}
	return sub
}

// One subscription stops and starts again while the broker runs: the rest
// of the broker keeps consuming meanwhile, and after the restart the
// subscription receives what was published while it was stopped where the
// system keeps it (Persistent), and what is published afterwards.
func testStopStart(t *testing.T, s Suite) {
	dest, other := s.Destination(t), s.Destination(t)
	b := s.Broker(t)
	in := collectBodies(t, s, b, dest, broker.Group("stop"), broker.Name("stop"))
	otherIn := collectBodies(t, s, b, other)
	s.Start(t, b)
	sub := control(t, b, dest)
	ctx, cancel := context.WithTimeout(context.Background(), s.Wait())
	defer cancel()

	publish(t, b, dest, "before")
	if v := in.Next(t); v != "before" {
		t.Fatalf("got %q, want before", v)
	}
	if err := sub.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := sub.Stop(ctx); err != nil {
		t.Fatalf("stop a stopped subscription: %v", err)
	}
	publish(t, b, dest, "while")
	// The broker and its other subscriptions keep running.
	publish(t, b, other, "other")
	if v := otherIn.Next(t); v != "other" {
		t.Fatalf("other subscription got %q while one was stopped", v)
	}
	if n := in.Len(); n != 0 {
		t.Fatalf("the stopped subscription received %d messages", n)
	}

	if err := sub.Start(ctx); err != nil {
		t.Fatalf("start again: %v", err)
	}
	if err := sub.Start(ctx); err != nil {
		t.Fatalf("start a running subscription: %v", err)
	}
	publish(t, b, dest, "after")
	if !s.Features.Persistent {
		if v := in.Next(t); v != "after" {
			t.Fatalf("got %q after the restart, want after", v)
		}
		return
	}
	got := in.TakeN(t, 2)
	slices.Sort(got)
	if !slices.Equal(got, []string{"after", "while"}) {
		t.Fatalf("after the restart got %q, want the message published while stopped and the one after", got)
	}
}

// holding is a running broker with a durable subscription (where the
// system has them) to a new destination, whose handler runs hold for the
// first message "held", records the body of every other message in the
// inbox, and acknowledges. It returns once hold runs.
func holding(t *testing.T, s Suite, hold func(ctx context.Context) error) (*broker.Broker, string, *broker.Subscription, *testkit.Inbox[string]) {
	t.Helper()
	dest := s.Destination(t)
	b := s.Broker(t)
	started := make(chan struct{})
	var once atomic.Bool
	in := testkit.NewInbox[string](s.Wait())
	if err := b.Subscribe(dest, func(ctx context.Context, m *broker.Message) error {
		if string(m.Body) == "held" && once.CompareAndSwap(false, true) {
			close(started)
			return hold(ctx)
		}
		in.Put(string(m.Body))
		return nil
	}, s.Options(broker.Group("stop"), broker.Name("stop"))...); err != nil {
		t.Fatal(err)
	}
	s.Start(t, b)
	sub := control(t, b, dest)
	publish(t, b, dest, "held")
	waitClosed(t, started, s.Wait(), "handler did not start")
	return b, dest, sub, in
}

// Stop waits for the handlers in flight and settles their messages before
// it returns; the settled message is not delivered again after Start.
// (That Stop cannot return nil while a handler is held is pinned by
// testStopDeadline, which needs no scheduling luck.)
func testStopDrains(t *testing.T, s Suite) {
	release := make(chan struct{})
	var finished atomic.Bool
	b, dest, sub, in := holding(t, s, func(context.Context) error {
		<-release
		finished.Store(true)
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), s.Wait())
	defer cancel()
	ctx, stopping := testkit.WatchedContext(ctx)
	type result struct {
		err      error
		finished bool // the handler had finished when Stop returned
	}
	stopped := make(chan result, 1)
	go func() {
		err := sub.Stop(ctx)
		stopped <- result{err, finished.Load()}
	}()
	// The handler is let go once Stop has begun waiting.
	select {
	case <-stopping:
	case r := <-stopped:
		t.Fatalf("stop returned (%v) while its handler was held", r.err)
	}
	close(release)
	r := <-stopped
	if r.err != nil {
		t.Fatalf("stop: %v", r.err)
	}
	if !r.finished {
		t.Fatal("stop returned before the in-flight handler finished")
	}

	if err := sub.Start(context.Background()); err != nil {
		t.Fatalf("start again: %v", err)
	}
	publish(t, b, dest, "marker")
	if v := in.Next(t); v != "marker" {
		t.Fatalf("got %q before the marker: the drained message was not settled", v)
	}
}

// Stop gives up when its ctx ends: it returns an error wrapping ctx.Err(),
// cancels the context of the handler still running, and the subscription
// can be started again.
func testStopDeadline(t *testing.T, s Suite) {
	cancelled := make(chan struct{})
	b, dest, sub, in := holding(t, s, func(ctx context.Context) error {
		<-ctx.Done()
		close(cancelled)
		return ctx.Err()
	})

	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- sub.Stop(ctx) }()
	cancel()
	if err := <-stopped; !errors.Is(err, context.Canceled) {
		t.Fatalf("stop with a stuck handler: %v, want an error wrapping context.Canceled", err)
	}
	waitClosed(t, cancelled, s.Wait(), "the stuck handler's context was not cancelled")

	if err := sub.Start(context.Background()); err != nil {
		t.Fatalf("start again: %v", err)
	}
	publish(t, b, dest, "fresh")
	// The held message was handed back: where the system keeps it, it may
	// come again before the fresh one.
	for {
		v := in.Next(t)
		if v == "fresh" {
			break
		}
		if v != "held" {
			t.Fatalf("got %q after the restart", v)
		}
	}
}
