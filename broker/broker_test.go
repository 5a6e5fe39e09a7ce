package broker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/testutil"
)

func noop(context.Context, *broker.Message) error { return nil }

func TestMisuseErrors(t *testing.T) {
	b := broker.New(testutil.Memory(t))
	ctx := t.Context()
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"empty destination subscribe", b.Subscribe("", noop), broker.ErrInvalid},
		{"nil handler", b.Subscribe("a", nil), broker.ErrInvalid},
		{"nil batch handler", b.SubscribeBatch("a", nil), broker.ErrInvalid},
		{"batch size negative", b.SubscribeBatch("a", func(context.Context, []*broker.Message) error { return nil }, broker.Batch(-1, 0)), broker.ErrInvalid},
		{"batch wait negative", b.SubscribeBatch("a", func(context.Context, []*broker.Message) error { return nil }, broker.Batch(0, -time.Second)), broker.ErrInvalid},
		{"batch option on plain subscribe", b.Subscribe("a", noop, broker.Batch(10, 0)), broker.ErrInvalid},
		{"concurrency zero", b.Subscribe("a", noop, broker.Concurrency(0)), broker.ErrInvalid},
		{"max attempts zero", b.Subscribe("a", noop, broker.MaxAttempts(0)), broker.ErrInvalid},
		{"dead letter empty", b.Subscribe("a", noop, broker.DeadLetter("")), broker.ErrInvalid},
		{"nil message", b.Publish(ctx, nil), broker.ErrInvalid},
		{"publish empty destination", b.Publish(ctx, &broker.Message{}), broker.ErrInvalid},
		{"empty batch", b.PublishBatch(ctx, nil), broker.ErrInvalid},
		{"batch with nil", b.PublishBatch(ctx, []*broker.Message{{Destination: "a"}, nil}), broker.ErrInvalid},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.err, c.want)
		}
	}
	// An option of another transport fails at Subscribe, naming the
	// option and both transports.
	err := b.Subscribe("a", noop, broker.TransportOption(natsOnly{}))
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("subscribe with a foreign transport option: %v", err)
	}
	for _, want := range []string{"JetStreamThing", "nats", "memory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	// One the transport itself rejects fails at Subscribe too.
	if err := b.Subscribe("a", noop, broker.TransportOption(memoryUnknown{})); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("subscribe with an option the transport does not define: %v", err)
	}
	if got := len(b.Endpoints()); got != 0 {
		t.Errorf("rejected subscriptions registered %d endpoints", got)
	}
}

type natsOnly struct{}

func (natsOnly) TransportName() string { return "nats" }
func (natsOnly) String() string        { return "JetStreamThing" }

type memoryUnknown struct{}

func (memoryUnknown) TransportName() string { return "memory" }

func TestStartTwiceAndPublishAfterClose(t *testing.T) {
	b := broker.New(testutil.Memory(t))
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); !errors.Is(err, broker.ErrInvalid) {
		t.Fatalf("second start: %v", err)
	}
	if err := b.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(t.Context(), &broker.Message{Destination: "a"}); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("publish after close: %v", err)
	}
	if err := b.Start(t.Context()); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("start after close: %v", err)
	}
}

// recordingMiddleware appends "name:direction" to a shared log.
func recordingMiddleware(name string, mu *sync.Mutex, log *[]string) driver.Middleware {
	add := func(s string) { mu.Lock(); *log = append(*log, s); mu.Unlock() }
	return driver.MiddlewareFuncs{
		Publish: func(next driver.PublishFunc) driver.PublishFunc {
			return func(ctx context.Context, op driver.Operation, msgs []*broker.Message) error {
				add(name + ":publish:" + op.Kind.String())
				return next(ctx, op, msgs)
			}
		},
		Consume: func(next driver.ConsumeFunc) driver.ConsumeFunc {
			return func(ctx context.Context, op driver.Operation, msgs []*broker.Message) error {
				add(name + ":consume")
				err := next(ctx, op, msgs)
				add(fmt.Sprintf("%s:consumed:%v", name, err))
				return err
			}
		},
		Settle: func(next driver.SettleFunc) driver.SettleFunc {
			return func(ctx context.Context, op driver.Operation, msgs []*broker.Message, s driver.Settlement) error {
				add(name + ":settle:" + s.Action.String())
				return next(ctx, op, msgs, s)
			}
		},
	}
}

func TestMiddlewareOrderAndSettle(t *testing.T) {
	var mu sync.Mutex
	var log []string
	b := broker.New(testutil.Memory(t), broker.WithMiddleware(
		recordingMiddleware("outer", &mu, &log),
		recordingMiddleware("inner", &mu, &log),
	))
	done := make(chan struct{})
	if err := b.Subscribe("orders", func(context.Context, *broker.Message) error {
		mu.Lock()
		log = append(log, "handler")
		mu.Unlock()
		return nil
	}, broker.Use(recordingMiddleware("sub", &mu, &log), driver.MiddlewareFuncs{
		Settle: func(next driver.SettleFunc) driver.SettleFunc {
			return func(ctx context.Context, op driver.Operation, msgs []*broker.Message, s driver.Settlement) error {
				defer close(done)
				return next(ctx, op, msgs, s)
			}
		},
	})); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	if err := b.Publish(t.Context(), &broker.Message{Destination: "orders"}); err != nil {
		t.Fatal(err)
	}
	<-done
	mu.Lock()
	got := slices.Clone(log)
	mu.Unlock()
	want := []string{
		"outer:publish:publish", "inner:publish:publish",
		"outer:consume", "inner:consume", "sub:consume", "handler",
		"sub:consumed:<nil>", "inner:consumed:<nil>", "outer:consumed:<nil>",
		"outer:settle:ack", "inner:settle:ack", "sub:settle:ack",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("middleware order:\n got %q\nwant %q", got, want)
	}
}

func TestPanicReachesMiddlewareAsPanicError(t *testing.T) {
	errs := make(chan error, 1)
	b := broker.New(testutil.Memory(t), broker.WithMiddleware(driver.MiddlewareFuncs{
		Consume: func(next driver.ConsumeFunc) driver.ConsumeFunc {
			return func(ctx context.Context, op driver.Operation, msgs []*broker.Message) error {
				err := next(ctx, op, msgs)
				errs <- err
				return err
			}
		},
	}))
	if err := b.Subscribe("p", func(context.Context, *broker.Message) error { panic(errors.New("inner cause")) }, broker.MaxAttempts(1)); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	if err := b.Publish(t.Context(), &broker.Message{Destination: "p"}); err != nil {
		t.Fatal(err)
	}
	err := <-errs
	var pe *broker.PanicError
	if !errors.As(err, &pe) {
		t.Fatalf("middleware saw %v, want a *PanicError", err)
	}
	if !strings.Contains(err.Error(), "inner cause") || len(pe.Stack) == 0 {
		t.Fatalf("panic error lost its value or stack: %v", err)
	}
	if v, ok := pe.Value.(error); !ok || !errors.Is(err, v) {
		t.Fatal("an error panic value must be unwrappable")
	}
}

func TestPermanentSkipsRetries(t *testing.T) {
	calls := make(chan int, 10)
	b := broker.New(testutil.Memory(t))
	if err := b.Subscribe("p", func(_ context.Context, m *broker.Message) error {
		calls <- m.Delivery.DeliveryCount
		if string(m.Body) == "bad" {
			return fmt.Errorf("decode: %w", broker.ErrPermanent)
		}
		return nil
	}, broker.MaxAttempts(5), broker.RetryBackoff(broker.ConstantBackoff(time.Millisecond))); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	for _, body := range []string{"bad", "good"} {
		if err := b.Publish(t.Context(), &broker.Message{Destination: "p", Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	if a, b := <-calls, <-calls; a != 1 || b != 1 {
		t.Fatalf("delivery counts %d, %d: a permanent error must not be retried", a, b)
	}
	if errors.Is(broker.Permanent(nil), broker.ErrPermanent) || !errors.Is(broker.Permanent(errors.New("x")), broker.ErrPermanent) {
		t.Fatal("Permanent")
	}
}

func TestBatchError(t *testing.T) {
	cause := errors.New("too large")
	err := error(broker.BatchError{nil, cause, nil})
	var be broker.BatchError
	if !errors.As(err, &be) || !slices.Equal(be.Failed(), []int{1}) || !errors.Is(err, cause) {
		t.Fatalf("BatchError: %v", err)
	}
	if !strings.Contains(err.Error(), "1 of 3") {
		t.Fatalf("message: %v", err)
	}
}

func TestExponentialBackoff(t *testing.T) {
	b := broker.ExponentialBackoff(100*time.Millisecond, time.Second)
	var got []time.Duration
	for a := 1; a <= 6; a++ {
		got = append(got, b(a))
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("backoff %v, want %v", got, want)
	}
}

func TestRunStopsWhenContextDone(t *testing.T) {
	b := broker.New(testutil.Memory(t))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("run did not return")
	}
	if err := b.Publish(t.Context(), &broker.Message{Destination: "a"}); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("publish after run: %v", err)
	}
}
