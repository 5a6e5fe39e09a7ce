package broker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/memory"
	"github.com/tracebus/tracebus/testutil"
)

// pullOne takes one message with a generous deadline and returns its body.
func pullOne(t *testing.T, p *broker.Puller[string]) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stopWait)
	defer cancel()
	var got string
	if err := p.Get(ctx, func(_ context.Context, v string) error { got = v; return nil }); err != nil {
		t.Fatalf("get: %v", err)
	}
	return got
}

// A Puller is a subscription: Endpoints lists it, Subscription stops it
// (a Get waiting returns ErrClosed, a later Get too) and starts it again,
// and Close ends it.
func TestPullerStopStart(t *testing.T) {
	b := broker.New(testutil.Memory(t), broker.WithLogger(discardLogger()))
	p, err := broker.NewPuller[string](b, "jobs", broker.Group("workers"))
	must(t, err)
	eps := b.Endpoints()
	if len(eps) != 1 || eps[0].Kind != driver.EndpointSubscriber || eps[0].Destination != "jobs" || eps[0].Group != "workers" {
		t.Fatalf("endpoints %+v, want the puller as a subscriber of jobs", eps)
	}
	ctx := context.Background()
	must(t, b.Start(ctx))
	pub := broker.Must(broker.NewPublisher[string](b, "jobs"))
	must(t, pub.Publish(ctx, "one"))
	if got := pullOne(t, p); got != "one" {
		t.Fatalf("got %q, want one", got)
	}

	sub, err := b.Subscription("jobs")
	must(t, err)
	waiting := make(chan error, 1)
	var started sync.WaitGroup
	started.Add(1)
	go func() {
		started.Done()
		waiting <- p.Get(ctx, func(context.Context, string) error { return nil })
	}()
	started.Wait()
	stopCtx, cancel := context.WithTimeout(ctx, stopWait)
	defer cancel()
	must(t, sub.Stop(stopCtx))
	if err := <-waiting; !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("get waiting across Stop: %v, want ErrClosed", err)
	}
	if err := p.Get(ctx, func(context.Context, string) error { return nil }); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("get on a stopped puller: %v, want ErrClosed", err)
	}

	must(t, sub.Start(stopCtx))
	must(t, pub.Publish(ctx, "two"))
	if got := pullOne(t, p); got != "two" {
		t.Fatalf("after Start: got %q, want two", got)
	}
	must(t, b.Close(stopCtx))
	if err := p.Get(ctx, func(context.Context, string) error { return nil }); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("get after Close: %v, want ErrClosed", err)
	}
}

// Stop waits for a Get running its handler, which settles before the
// consumer closes.
func TestPullerStopDrainsHandler(t *testing.T) {
	b := broker.New(testutil.Memory(t), broker.WithLogger(discardLogger()))
	p, err := broker.NewPuller[string](b, "jobs")
	must(t, err)
	ctx := context.Background()
	must(t, b.Start(ctx))
	defer b.Close(ctx)
	must(t, broker.Must(broker.NewPublisher[string](b, "jobs")).Publish(ctx, "slow"))

	inHandler, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- p.Get(ctx, func(context.Context, string) error {
			close(inHandler)
			<-release
			return nil
		})
	}()
	<-inHandler
	sub, err := b.Subscription("jobs")
	must(t, err)
	stopped := make(chan error, 1)
	go func() {
		stopCtx, cancel := context.WithTimeout(ctx, stopWait)
		defer cancel()
		stopped <- sub.Stop(stopCtx)
	}()
	// A second Get fails once the Stop has begun: from then on, Stop may
	// return only after the first Get's handler has.
	for {
		err := p.Get(ctx, func(context.Context, string) error { return nil })
		if errors.Is(err, broker.ErrClosed) {
			break
		}
		must(t, err)
	}
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a handler ran", err)
	default:
	}
	close(release)
	must(t, <-done)
	must(t, <-stopped)
}

// A panic in h is recovered as a *PanicError and the message comes back;
// a panic in the body of an All loop goes on up, the message comes back
// too.
func TestPullerPanics(t *testing.T) {
	b := broker.New(testutil.Memory(t), broker.WithLogger(discardLogger()))
	p, err := broker.NewPuller[string](b, "jobs", broker.RetryBackoff(broker.ConstantBackoff(0)))
	must(t, err)
	ctx := context.Background()
	must(t, b.Start(ctx))
	defer b.Close(ctx)
	must(t, broker.Must(broker.NewPublisher[string](b, "jobs")).Publish(ctx, "boom"))

	err = p.Get(ctx, func(context.Context, string) error { panic("handler") })
	var pe *broker.PanicError
	if !errors.As(err, &pe) || fmt.Sprint(pe.Value) != "handler" {
		t.Fatalf("get: %v, want a *PanicError", err)
	}
	func() {
		defer func() {
			if r := recover(); r != "body" {
				t.Fatalf("recovered %v, want the loop body's panic", r)
			}
		}()
		for range p.All(ctx) {
			panic("body")
		}
	}()
	if got := pullOne(t, p); got != "boom" {
		t.Fatalf("got %q, want the message back", got)
	}
}

// A transport without driver.Puller is refused at once.
func TestPullerUnsupported(t *testing.T) {
	b := broker.New(struct{ driver.Transport }{testutil.Memory(t)})
	if _, err := broker.NewPuller[string](b, "jobs"); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("NewPuller: %v, want errors.ErrUnsupported", err)
	}
}

// A Puller takes every message its caller asks for: a Filter on it is a
// mistake, and a filtered handler of the same destination does not join it.
func TestPullerAndFilters(t *testing.T) {
	b := broker.New(testutil.Memory(t))
	defer b.Close(context.Background())
	if _, err := broker.NewPuller[string](b, "jobs", broker.Filter(func(*broker.Message) bool { return true })); !errors.Is(err, broker.ErrInvalid) {
		t.Fatalf("NewPuller with a Filter: %v, want ErrInvalid", err)
	}
	if _, err := broker.NewPuller[string](b, "jobs"); err != nil {
		t.Fatal(err)
	}
	err := broker.Handle(b, "jobs", func(context.Context, string) error { return nil },
		broker.Filter(func(*broker.Message) bool { return true }))
	if err != nil {
		t.Fatalf("a filtered handler beside a Puller: %v", err)
	}
	if n := len(b.Endpoints()); n != 2 {
		t.Errorf("%d endpoints, want the Puller's and the handler's", n)
	}
}

// With synchronous delivery (the test harness), a message a push member of
// a group hands back may go to a Puller of the same group: it waits there
// for a Get.
func TestPullerSyncDeliveryGroup(t *testing.T) {
	b := broker.New(testutil.Memory(t, memory.WithServer(memory.NewServer(memory.WithSyncDelivery()))),
		broker.WithLogger(discardLogger()))
	p, err := broker.NewPuller[string](b, "jobs", broker.Group("workers"))
	must(t, err)
	pushed := 0
	must(t, broker.Handle(b, "jobs", func(context.Context, string) error {
		pushed++
		return errors.New("not here")
	}, broker.Group("workers"), broker.RetryBackoff(broker.ConstantBackoff(0)), broker.MaxAttempts(10)))
	ctx := context.Background()
	must(t, b.Start(ctx))
	defer b.Close(ctx)
	pub := broker.Must(broker.NewPublisher[string](b, "jobs"))
	for range 2 {
		must(t, pub.Publish(ctx, "job"))
	}
	// Both reached the Puller, at once or after the push member failed.
	for range 2 {
		if got := pullOne(t, p); got != "job" {
			t.Fatalf("got %q", got)
		}
	}
	if pushed > 2 {
		t.Errorf("push member ran %d times, want at most once per message", pushed)
	}
}
