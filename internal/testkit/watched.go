package testkit

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tracebus/tracebus/broker"
)

// WatchedContext returns a context like ctx and a channel that is closed
// the first time the context's Done method is called. A test hands it to a
// call that watches its context while it blocks, such as Broker.Close while
// it drains, to learn that the call has begun without sleeping.
func WatchedContext(ctx context.Context) (context.Context, <-chan struct{}) {
	w := &watchedContext{Context: ctx, called: make(chan struct{})}
	return w, w.called
}

type watchedContext struct {
	context.Context
	once   sync.Once
	called chan struct{}
}

func (c *watchedContext) Done() <-chan struct{} {
	c.once.Do(func() { close(c.called) })
	return c.Context.Done()
}

// CloseWhileBlocked closes b while its handlers are held, and calls release
// to let them go only once Close has begun draining (seen through
// WatchedContext): the handlers are in flight when Close starts. It fails t
// if Close returns before release, returns an error, or has not returned
// within wait after release (a guard against a hang, not a timing check).
func CloseWhileBlocked(t testing.TB, b *broker.Broker, release func(), wait time.Duration) {
	t.Helper()
	ctx, closing := WatchedContext(context.Background())
	closed := make(chan error, 1)
	go func() { closed <- b.Close(ctx) }()
	select {
	case <-closing:
	case err := <-closed:
		t.Fatalf("Close returned (%v) while its handlers were held", err)
	}
	release()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(wait):
		t.Fatalf("Close did not return within %v after the handlers were let go", wait)
	}
}
