package testutil

import (
	"context"
	"sync"
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
