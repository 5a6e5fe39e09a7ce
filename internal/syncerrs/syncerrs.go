// Package syncerrs collects the handler failures that one synchronous
// publish on a memory server caused, so that the test harness can return
// them from that publish (testutil.WithHandlerErrors).
//
// The harness puts a Collector in the ctx of the outermost publish; the
// memory server, delivering synchronously, carries it from that ctx into
// the ctx of every delivery the publish causes, and so into the publishes
// those handlers make with their ctx. The harness's consume middleware and
// outcome observer then find it in the delivery's ctx.
package syncerrs

import (
	"context"
	"errors"
	"sync"
)

// Collector gathers failures in the order they were added. It is safe for
// concurrent use.
type Collector struct {
	mu   sync.Mutex
	errs []entry
}

type entry struct {
	key any
	err error
}

// Set records err under key, replacing what key had; a nil err removes
// key.
func (c *Collector) Set(key any, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.errs {
		if e.key == key {
			if err == nil {
				c.errs = append(c.errs[:i], c.errs[i+1:]...)
			} else {
				c.errs[i].err = err
			}
			return
		}
	}
	if err != nil {
		c.errs = append(c.errs, entry{key, err})
	}
}

// Err returns nil without failures, the failure when there is one, and
// the failures joined with errors.Join otherwise, in the order they were
// first recorded.
func (c *Collector) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch len(c.errs) {
	case 0:
		return nil
	case 1:
		return c.errs[0].err
	}
	errs := make([]error, len(c.errs))
	for i, e := range c.errs {
		errs[i] = e.err
	}
	return errors.Join(errs...)
}

type ctxKey struct{}

// NewContext returns ctx carrying c.
func NewContext(ctx context.Context, c *Collector) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// FromContext returns the Collector ctx carries, or nil.
func FromContext(ctx context.Context) *Collector {
	c, _ := ctx.Value(ctxKey{}).(*Collector)
	return c
}
