package broker_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/asyncapi"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/memory"
	"github.com/tracebus/tracebus/testutil"
)

// stallingTransport is the memory transport behind a server that is slow to
// set up subscriptions: a Subscribe to a destination in stall blocks until
// the test releases it (or, when honourCtx is set, until its ctx ends, as
// nats.go and kafka-go do).
type stallingTransport struct {
	*memory.Transport
	stall     string
	honourCtx bool
	entered   chan struct{} // closed when the stalling Subscribe began
	release   chan struct{} // closed by the test to let it finish
	closed    chan struct{} // closed when its subscription was closed
	calls     atomic.Int32
}

func newStallingTransport(t *testing.T, stall string, honourCtx bool) *stallingTransport {
	st := &stallingTransport{
		Transport: testutil.Memory(t),
		stall:     stall,
		honourCtx: honourCtx,
		entered:   make(chan struct{}),
		release:   make(chan struct{}),
		closed:    make(chan struct{}),
	}
	t.Cleanup(st.unstall)
	return st
}

func (st *stallingTransport) unstall() {
	select {
	case <-st.release:
	default:
		close(st.release)
	}
}

func (st *stallingTransport) Subscribe(ctx context.Context, spec driver.SubscriptionSpec, deliver driver.DeliverFunc) (driver.Subscription, error) {
	if spec.Destination != st.stall || st.calls.Add(1) != 1 {
		return st.Transport.Subscribe(ctx, spec, deliver)
	}
	// The server has set the subscription up; its answer is slow.
	sub, err := st.Transport.Subscribe(ctx, spec, deliver)
	if err != nil {
		return nil, err
	}
	close(st.entered)
	var done <-chan struct{}
	if st.honourCtx {
		done = ctx.Done()
	}
	select {
	case <-st.release:
	case <-done:
		_ = sub.Close(context.WithoutCancel(ctx))
		return nil, ctx.Err()
	}
	return &watchedSubscription{Subscription: sub, closed: st.closed}, nil
}

type watchedSubscription struct {
	driver.Subscription
	closed chan struct{}
	once   atomic.Bool
}

func (w *watchedSubscription) Close(ctx context.Context) error {
	if w.once.CompareAndSwap(false, true) {
		close(w.closed)
	}
	return w.Subscription.Close(ctx)
}

// hangGuard bounds how long a call that must not wait behind the stalled
// subscribe may take: far beyond any scheduling delay of a loaded machine,
// and still a failure instead of a test that hangs until the binary's
// timeout.
const hangGuard = time.Minute

// answers runs fn and fails the test when it does not return within
// hangGuard.
func answers(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(hangGuard):
		t.Fatalf("%s waited behind a stalled subscribe", what)
	}
}

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(hangGuard):
		t.Fatalf("%s did not return", what)
		panic("unreachable")
	}
}

// givesUp calls stop (Close, App.Stop) with a short deadline while a
// subscribe is stalled: it waits for the subscribe within its ctx, then
// returns an error wrapping context.DeadlineExceeded. A deadline rather
// than a cancellation, so that the drain of the other subscriptions has all
// the time it needs first; the figure is no threshold of the test, which
// only needs stop to return at all.
func givesUp(t *testing.T, what string, stop func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	var err error
	answers(t, what, func() { err = stop(ctx) })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s: %v, want context.DeadlineExceeded (the subscribe never finished)", what, err)
	}
}

// checkAnswering asserts that Endpoints, the AsyncAPI handler and the
// health handler answer while a subscribe is stalled.
func checkAnswering(t *testing.T, b *broker.Broker, app *broker.App, wantReady int) {
	t.Helper()
	answers(t, "Endpoints", func() {
		if len(b.Endpoints()) == 0 {
			t.Error("Endpoints: none, want the subscriptions registered")
		}
	})
	answers(t, "the AsyncAPI handler", func() {
		rec := httptest.NewRecorder()
		asyncapi.New().Handler(b).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/asyncapi.json", nil))
		if rec.Code != http.StatusOK {
			t.Errorf("AsyncAPI handler: status %d, want 200: %s", rec.Code, rec.Body)
		}
	})
	answers(t, "the health handler", func() {
		for path, want := range map[string]int{"/livez": http.StatusOK, "/readyz": wantReady} {
			rec := httptest.NewRecorder()
			app.HealthHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			if rec.Code != want {
				t.Errorf("health %s: status %d, want %d: %s", path, rec.Code, want, rec.Body)
			}
		}
	})
}

// A Subscribe on a started broker that waits for a slow server holds up
// neither Close nor the calls that only read the broker's state. Close
// gives up on its ctx; the subscription the server completes afterwards is
// closed, and its Subscribe reports the broker closed.
func TestStalledSubscribeDoesNotHoldTheBroker(t *testing.T) {
	for _, honourCtx := range []bool{false, true} {
		name := "server ignores ctx"
		if honourCtx {
			name = "subscribe honours ctx"
		}
		t.Run(name, func(t *testing.T) {
			st := newStallingTransport(t, "slow", honourCtx)
			b := broker.New(st, broker.WithLogger(discardLogger()))
			must(t, b.Subscribe("fast", noop))
			app := broker.NewApp(broker.WithBrokers(b))
			must(t, app.Start(t.Context()))

			subscribed := make(chan error, 1)
			go func() { subscribed <- b.Subscribe("slow", noop) }()
			receive(t, st.entered, "the stalling Subscribe")

			checkAnswering(t, b, app, http.StatusOK)
			if err := b.Publish(t.Context(), &broker.Message{Destination: "fast"}); err != nil {
				t.Fatalf("publish while a subscribe is stalled: %v", err)
			}

			givesUp(t, "Close", b.Close)

			st.unstall()
			err := receive(t, subscribed, "the stalled Subscribe")
			if honourCtx {
				// Close cancelled the delivery context the subscribe got.
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("stalled subscribe: %v, want context.Canceled", err)
				}
				return
			}
			if !errors.Is(err, broker.ErrClosed) {
				t.Fatalf("stalled subscribe: %v, want ErrClosed", err)
			}
			receive(t, st.closed, "the close of the subscription the server completed late")
		})
	}
}

// A Start stalled on a slow server holds up neither Close nor the calls
// that only read the broker's state; Start then fails with ErrClosed and
// what it subscribed is closed.
func TestStalledStartDoesNotHoldClose(t *testing.T) {
	st := newStallingTransport(t, "slow", false)
	b := broker.New(st, broker.WithLogger(discardLogger()))
	must(t, b.Subscribe("fast", noop))
	must(t, b.Subscribe("slow", noop))
	app := broker.NewApp(broker.WithBrokers(b))

	started := make(chan error, 1)
	go func() { started <- app.Start(t.Context()) }()
	receive(t, st.entered, "the stalling Subscribe")

	// The app is starting: alive, not ready.
	checkAnswering(t, b, app, http.StatusServiceUnavailable)
	// Registering more while Start runs neither waits nor is lost.
	answers(t, "Subscribe during Start", func() {
		if err := b.Subscribe("late", noop); err != nil {
			t.Errorf("subscribe during start: %v", err)
		}
	})

	givesUp(t, "App.Stop", app.Stop)
	givesUp(t, "Close", b.Close)

	st.unstall()
	if err := receive(t, started, "the stalled Start"); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("start: %v, want ErrClosed", err)
	}
	receive(t, st.closed, "the close of the subscription the server completed late")
	if err := b.Subscribe("after", noop); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("subscribe after close: %v, want ErrClosed", err)
	}
}

// Subscriptions registered while Start runs are started by it: a message
// published to one after Start returned is handled.
func TestSubscribeDuringStartIsStarted(t *testing.T) {
	st := newStallingTransport(t, "slow", false)
	b := broker.New(st, broker.WithLogger(discardLogger()))
	must(t, b.Subscribe("slow", noop))
	started := make(chan error, 1)
	go func() { started <- b.Start(t.Context()) }()
	receive(t, st.entered, "the stalling Subscribe")

	got := make(chan struct{}, 1)
	must(t, b.Subscribe("late", func(context.Context, *broker.Message) error {
		got <- struct{}{}
		return nil
	}))
	st.unstall()
	must(t, receive(t, started, "Start"))
	must(t, b.Publish(t.Context(), &broker.Message{Destination: "late"}))
	receive(t, got, "the handler of the subscription registered during Start")
	must(t, b.Close(t.Context()))
}
