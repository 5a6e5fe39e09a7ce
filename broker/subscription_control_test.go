package broker_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/memory"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/testutil"
)

const stopWait = time.Minute // room for a loaded machine, never waited for when passing

// refusing is the memory transport with its subscribing switched off on
// demand, as a server that refuses a subscription would.
type refusing struct {
	*memory.Transport
	refuse atomic.Bool
}

var errRefused = errors.New("subscription refused")

func (r *refusing) Subscribe(ctx context.Context, spec driver.SubscriptionSpec, deliver driver.DeliverFunc) (driver.Subscription, error) {
	if r.refuse.Load() {
		return nil, errRefused
	}
	return r.Transport.Subscribe(ctx, spec, deliver)
}

func TestSubscriptionUnknownDestination(t *testing.T) {
	b := broker.New(testutil.Memory(t))
	must(t, b.Subscribe("orders", func(context.Context, *broker.Message) error { return nil }))
	if _, err := b.Subscription("invoices"); !errors.Is(err, broker.ErrInvalid) {
		t.Fatalf("subscription of a destination without one: %v, want ErrInvalid", err)
	}
}

// A subscription stopped before the broker starts does not start with it;
// Start then starts it. Memory stores nothing, so what is published while
// it is stopped never reaches it.
func TestSubscriptionStoppedBeforeStart(t *testing.T) {
	b := broker.New(testutil.Memory(t))
	in := testkit.NewInbox[string](stopWait)
	must(t, b.Subscribe("orders", func(_ context.Context, m *broker.Message) error {
		in.Put(string(m.Body))
		return nil
	}))
	sub, err := b.Subscription("orders")
	must(t, err)
	ctx := t.Context()
	must(t, sub.Stop(ctx))
	must(t, b.Start(ctx))
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	must(t, b.Publish(ctx, &broker.Message{Destination: "orders", Body: []byte("while stopped")}))
	must(t, sub.Start(ctx))
	must(t, b.Publish(ctx, &broker.Message{Destination: "orders", Body: []byte("started")}))
	if v := in.Next(t); v != "started" {
		t.Fatalf("got %q, want started", v)
	}
}

// Readiness: a subscription stopped on purpose keeps the app ready; one
// that could not be started again makes it not ready until a Start
// succeeds.
func TestReadinessFollowsSubscriptionRestart(t *testing.T) {
	tr := &refusing{Transport: testutil.Memory(t)}
	b := broker.New(tr)
	must(t, b.Subscribe("orders", func(context.Context, *broker.Message) error { return nil }))
	app := broker.NewApp(broker.WithBrokers(b))
	ctx := t.Context()
	must(t, app.Start(ctx))
	t.Cleanup(func() { _ = app.Stop(context.Background()) })
	sub, err := b.Subscription("orders")
	must(t, err)

	must(t, sub.Stop(ctx))
	if err := app.Ready(ctx); err != nil {
		t.Fatalf("ready with a subscription stopped on purpose: %v", err)
	}
	tr.refuse.Store(true)
	if err := sub.Start(ctx); !errors.Is(err, errRefused) {
		t.Fatalf("start refused by the transport: %v, want its error", err)
	}
	if err := app.Ready(ctx); !errors.Is(err, broker.ErrNotReady) || !errors.Is(err, errRefused) {
		t.Fatalf("ready with a subscription down: %v, want ErrNotReady with the cause", err)
	}
	tr.refuse.Store(false)
	must(t, sub.Start(ctx))
	if err := app.Ready(ctx); err != nil {
		t.Fatalf("ready once started again: %v", err)
	}
	// Stopping a subscription that is down is on purpose as well.
	tr.refuse.Store(true)
	must(t, sub.Stop(ctx))
	_ = sub.Start(ctx)
	must(t, sub.Stop(ctx))
	if err := app.Ready(ctx); err != nil {
		t.Fatalf("ready once the failed subscription was stopped: %v", err)
	}
}

// A closed broker's subscription cannot start again, and stopping it is a
// no-op.
func TestSubscriptionAfterClose(t *testing.T) {
	b := broker.New(testutil.Memory(t))
	must(t, b.Subscribe("orders", func(context.Context, *broker.Message) error { return nil }))
	sub, err := b.Subscription("orders")
	must(t, err)
	ctx := t.Context()
	must(t, b.Start(ctx))
	must(t, b.Close(ctx))
	if err := sub.Stop(ctx); err != nil {
		t.Fatalf("stop after close: %v", err)
	}
	if err := sub.Start(ctx); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("start after close: %v, want ErrClosed", err)
	}
}

// Stopping and starting again, several times and from several goroutines,
// leaves no goroutine behind once the broker is closed, and every message
// published while the subscription runs is handled.
func TestSubscriptionStopStartNoLeak(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tr, err := memory.New()
	must(t, err)
	b := broker.New(tr)
	var handled atomic.Int32
	must(t, b.Subscribe("orders", func(context.Context, *broker.Message) error {
		handled.Add(1)
		return nil
	}, broker.Concurrency(4)))
	ctx := t.Context()
	must(t, b.Start(ctx))
	sub, err := b.Subscription("orders")
	must(t, err)
	done := make(chan error, 2)
	for range 2 {
		go func() {
			for range 20 {
				if err := sub.Stop(ctx); err != nil {
					done <- err
					return
				}
				if err := sub.Start(ctx); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 2 {
		must(t, <-done)
	}
	must(t, sub.Start(ctx))
	const n = 10
	for range n {
		must(t, b.Publish(ctx, &broker.Message{Destination: "orders"}))
	}
	testutil.Eventually(t, stopWait, func() bool { return handled.Load() == n }, "messages published while running were not all handled")
	must(t, b.Close(ctx))
}

// Every subscription to the destination is stopped and started together;
// one to another destination is left alone.
func TestSubscriptionControlsEverySubscriptionToDestination(t *testing.T) {
	b := broker.New(testutil.Memory(t))
	in := testkit.NewInbox[string](stopWait)
	for _, g := range []string{"a", "b"} {
		must(t, b.Subscribe("orders", func(_ context.Context, m *broker.Message) error {
			in.Put(g + ":" + string(m.Body))
			return nil
		}, broker.Group(g)))
	}
	must(t, b.Subscribe("audit", func(_ context.Context, m *broker.Message) error {
		in.Put("audit:" + string(m.Body))
		return nil
	}))
	ctx := t.Context()
	must(t, b.Start(ctx))
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	sub, err := b.Subscription("orders")
	must(t, err)
	must(t, sub.Stop(ctx))
	must(t, b.Publish(ctx, &broker.Message{Destination: "orders", Body: []byte("1")}))
	must(t, b.Publish(ctx, &broker.Message{Destination: "audit", Body: []byte("1")}))
	if v := in.Next(t); v != "audit:1" {
		t.Fatalf("got %q while orders was stopped, want audit:1", v)
	}
	must(t, sub.Start(ctx))
	must(t, b.Publish(ctx, &broker.Message{Destination: "orders", Body: []byte("2")}))
	got := in.TakeN(t, 2)
	slices.Sort(got)
	if !slices.Equal(got, []string{"a:2", "b:2"}) {
		t.Fatalf("after start got %q, want a:2 and b:2", got)
	}
}
