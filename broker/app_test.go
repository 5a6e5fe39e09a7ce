package broker_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/testutil"
)

// events records what happened, in order, from any goroutine.
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) add(s string) { e.mu.Lock(); e.log = append(e.log, s); e.mu.Unlock() }

func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.log)
}

// hook records its name and, with probe set, whether b could publish
// then.
func (e *events) hook(name string, b *broker.Broker, err error) func(context.Context) error {
	return func(ctx context.Context) error {
		if b != nil {
			perr := b.Publish(ctx, &broker.Message{Destination: "probe"})
			switch {
			case perr == nil:
				name += "(publishes)"
			case errors.Is(perr, broker.ErrClosed):
				name += "(closed)"
			default:
				name += "(" + perr.Error() + ")"
			}
		}
		e.add(name)
		return err
	}
}

// Hooks run in their order around the brokers' start and stop: before-stop
// while the brokers still publish, after-stop once their transports are
// closed, telemetry last.
func TestAppHooksRunInOrder(t *testing.T) {
	var ev events
	b1, b2 := broker.New(testutil.Memory(t)), broker.New(testutil.Memory(t))
	must(t, b1.Subscribe("in", func(context.Context, *broker.Message) error { ev.add("handled"); return nil }))
	app := broker.NewApp(
		broker.WithBrokers(b1, b2),
		broker.WithHooks(broker.Hooks{
			BeforeStart: ev.hook("before-start-1", nil, nil),
			AfterStart:  ev.hook("after-start", b1, nil),
			BeforeStop:  ev.hook("before-stop", b2, nil),
			AfterStop:   ev.hook("after-stop", b2, nil),
		}),
		broker.WithHooks(broker.Hooks{BeforeStart: ev.hook("before-start-2", nil, nil)}),
		broker.WithTelemetryShutdown(func(context.Context) error { ev.add("telemetry"); return nil }),
	)
	must(t, app.Start(t.Context()))
	if err := app.Start(t.Context()); !errors.Is(err, broker.ErrInvalid) {
		t.Fatalf("second start: %v, want ErrAlreadyStarted", err)
	}
	must(t, b1.Publish(t.Context(), &broker.Message{Destination: "in"}))
	testutil.Eventually(t, time.Minute, func() bool { return slices.Contains(ev.list(), "handled") }, "the subscription did not start with the app")
	must(t, app.Stop(t.Context()))
	must(t, app.Stop(t.Context())) // a second Stop returns nil

	want := []string{
		"before-start-1", "before-start-2", "after-start(publishes)", "handled",
		"before-stop(publishes)", "after-stop(closed)", "telemetry",
	}
	if got := ev.list(); !slices.Equal(got, want) {
		t.Fatalf("events:\n got %q\nwant %q", got, want)
	}
	if err := app.Start(t.Context()); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("start after stop: %v, want ErrClosed", err)
	}
}

// A failing after-start hook aborts the start and undoes it: the brokers
// that started are stopped and closed, the stop hooks release what the
// before-start hooks set up, telemetry is flushed.
func TestAppFailingAfterStartHookUndoesTheStart(t *testing.T) {
	var ev events
	boom := errors.New("boom")
	b1, b2 := broker.New(testutil.Memory(t)), broker.New(testutil.Memory(t))
	must(t, b1.Subscribe("in", noop))
	app := broker.NewApp(
		broker.WithBrokers(b1, b2),
		broker.WithHooks(broker.Hooks{
			BeforeStart: ev.hook("before-start", nil, nil),
			AfterStart:  ev.hook("after-start", nil, boom),
			BeforeStop:  ev.hook("before-stop", nil, nil),
			AfterStop:   ev.hook("after-stop", nil, nil),
		}),
		broker.WithHooks(broker.Hooks{AfterStart: ev.hook("after-start-never", nil, nil)}),
		broker.WithTelemetryShutdown(func(context.Context) error { ev.add("telemetry"); return nil }),
	)
	err := app.Start(t.Context())
	if !errors.Is(err, boom) {
		t.Fatalf("start: %v, want the hook's error", err)
	}
	want := []string{"before-start", "after-start", "before-stop", "after-stop", "telemetry"}
	if got := ev.list(); !slices.Equal(got, want) {
		t.Fatalf("events:\n got %q\nwant %q", got, want)
	}
	for i, b := range []*broker.Broker{b1, b2} {
		if err := b.Publish(t.Context(), &broker.Message{Destination: "in"}); !errors.Is(err, broker.ErrClosed) {
			t.Errorf("broker %d after a failed start: publish %v, want ErrClosed", i, err)
		}
	}
	if err := app.Live(); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("live after a failed start: %v, want ErrClosed", err)
	}
}

// A failing before-start hook starts nothing: no broker starts, no stop
// hook runs, the brokers are closed and telemetry is flushed.
func TestAppFailingBeforeStartHookStartsNothing(t *testing.T) {
	var ev events
	boom := errors.New("boom")
	b := broker.New(testutil.Memory(t))
	must(t, b.Subscribe("in", func(context.Context, *broker.Message) error { ev.add("handled"); return nil }))
	app := broker.NewApp(
		broker.WithBrokers(b),
		broker.WithHooks(broker.Hooks{
			BeforeStart: ev.hook("before-start", nil, boom),
			AfterStart:  ev.hook("after-start", nil, nil),
			BeforeStop:  ev.hook("before-stop", nil, nil),
			AfterStop:   ev.hook("after-stop", nil, nil),
		}),
		broker.WithHooks(broker.Hooks{BeforeStart: ev.hook("before-start-never", nil, nil)}),
		broker.WithTelemetryShutdown(func(context.Context) error { ev.add("telemetry"); return nil }),
	)
	if err := app.Start(t.Context()); !errors.Is(err, boom) {
		t.Fatalf("start: %v, want the hook's error", err)
	}
	if got, want := ev.list(), []string{"before-start", "telemetry"}; !slices.Equal(got, want) {
		t.Fatalf("events:\n got %q\nwant %q", got, want)
	}
	if err := b.Start(t.Context()); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("broker after the failed start: start %v, want ErrClosed", err)
	}
}

// A broker that cannot start fails the app's start, and the brokers
// started before it are stopped again.
func TestAppFailingBrokerUndoesTheOthers(t *testing.T) {
	var ev events
	started := broker.New(testutil.Memory(t))
	must(t, started.Subscribe("in", noop))
	broken := broker.New(testutil.Memory(t))
	must(t, broken.Close(t.Context()))
	app := broker.NewApp(
		broker.WithBrokers(started, broken),
		broker.WithHooks(broker.Hooks{
			AfterStart: ev.hook("after-start", nil, nil),
			AfterStop:  ev.hook("after-stop", nil, nil),
		}),
	)
	err := app.Start(t.Context())
	if !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("start: %v, want the broker's ErrClosed", err)
	}
	if err := started.Publish(t.Context(), &broker.Message{Destination: "in"}); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("the broker that started: publish %v after the failed start, want ErrClosed", err)
	}
	if got, want := ev.list(), []string{"after-stop"}; !slices.Equal(got, want) {
		t.Fatalf("events: got %q, want %q", got, want)
	}
	dup := broker.NewApp(broker.WithBrokers(started, started))
	if err := dup.Start(t.Context()); !errors.Is(err, broker.ErrInvalid) {
		t.Fatalf("a broker given twice: %v, want ErrInvalid", err)
	}
}

// While the app drains, a handler of one broker still publishes through
// another: transports close only after every broker has drained.
func TestAppDrainPublishesOnAnotherBroker(t *testing.T) {
	in, out := broker.New(testutil.Memory(t)), broker.New(testutil.Memory(t))
	entered := make(chan struct{})
	release := make(chan struct{})
	published := make(chan error, 1)
	must(t, in.Subscribe("work", func(ctx context.Context, m *broker.Message) error {
		close(entered)
		<-release
		err := out.Publish(ctx, &broker.Message{Destination: "done", Body: m.Body})
		published <- err
		return err
	}))
	// out has a subscription of its own, which stops with in's.
	must(t, out.Subscribe("done", noop))
	var ev events
	app := broker.NewApp(broker.WithBrokers(in, out), broker.WithHooks(broker.Hooks{AfterStop: ev.hook("after-stop", nil, nil)}))
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- app.Run(ctx) }()
	testutil.Eventually(t, time.Minute, func() bool { return app.Ready(t.Context()) == nil }, "the app did not become ready")
	must(t, in.Publish(t.Context(), &broker.Message{Destination: "work", Body: []byte("x")}))
	waitFor(t, entered, "the handler did not start")

	cancel()
	// The drain has begun once the brokers refuse new subscriptions.
	testutil.Eventually(t, time.Minute, func() bool {
		return errors.Is(in.Subscribe("probe", noop), broker.ErrClosed) &&
			errors.Is(out.Subscribe("probe", noop), broker.ErrClosed)
	}, "the drain did not begin")
	if len(ran) != 0 || len(ev.list()) != 0 {
		t.Fatal("the app stopped while a handler was in flight")
	}
	close(release)
	select {
	case err := <-published:
		if err != nil {
			t.Fatalf("publish during the drain: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the handler did not publish")
	}
	select {
	case err := <-ran:
		must(t, err)
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after the drain")
	}
	if err := out.Publish(t.Context(), &broker.Message{Destination: "done"}); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("publish after the stop: %v, want ErrClosed", err)
	}
}

// The shutdown timeout bounds the stop: a handler that does not return is
// abandoned with its context cancelled, and Run reports the deadline.
func TestAppShutdownTimeout(t *testing.T) {
	b := broker.New(testutil.Memory(t), broker.WithLogger(discardLogger()))
	entered := make(chan struct{})
	must(t, b.Subscribe("stuck", func(ctx context.Context, _ *broker.Message) error {
		close(entered)
		<-ctx.Done()
		return ctx.Err()
	}))
	flushed := make(chan struct{})
	app := broker.NewApp(
		broker.WithBrokers(b),
		broker.WithShutdownTimeout(50*time.Millisecond),
		broker.WithTelemetryShutdown(func(context.Context) error { close(flushed); return nil }),
	)
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- app.Run(ctx) }()
	testutil.Eventually(t, time.Minute, func() bool { return app.Ready(t.Context()) == nil }, "the app did not become ready")
	must(t, b.Publish(t.Context(), &broker.Message{Destination: "stuck"}))
	waitFor(t, entered, "the handler did not start")
	cancel()
	select {
	case err := <-ran:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("run: %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not give up on the stuck handler")
	}
	waitFor(t, flushed, "telemetry was not shut down")
}
