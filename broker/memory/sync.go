package memory

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/tracebus/tracebus/broker"
)

// Bounds of synchronous delivery (WithSyncDelivery), so that a test whose
// handlers never settle for good fails instead of hanging.
const (
	// SyncDeliveryLimit is how many times a message is delivered to one
	// subscription, redeliveries included, within one synchronous Publish.
	SyncDeliveryLimit = 100
	// SyncDepthLimit is how deep synchronous publishes made by handlers
	// nest.
	SyncDepthLimit = 64
)

// ErrSyncLoop is wrapped by the error of a synchronous Publish that
// stopped delivering because a message exceeded SyncDeliveryLimit or
// publishes nested beyond SyncDepthLimit. Everything that Publish caused
// stops at that point: every later delivery is skipped and every publish
// made by a handler still running fails with the same error.
var ErrSyncLoop = errors.New("memory: synchronous delivery does not end")

// cascade is everything one outermost synchronous Publish causes. The
// first bound exceeded stops it all: a handler whose failure makes its
// caller retry, which fails again, must not multiply the work.
type cascade struct {
	stopped atomic.Pointer[error]
}

// stop ends the cascade with err, unless it has ended already.
func (c *cascade) stop(err error) { c.stopped.CompareAndSwap(nil, &err) }

func (c *cascade) err() error {
	if p := c.stopped.Load(); p != nil {
		return *p
	}
	return nil
}

// syncScope is what the deliver ctx of an inline delivery carries to the
// publishes its handler makes with that ctx: its cascade and how deeply it
// is nested.
type syncScope struct {
	c     *cascade
	depth int
}

type syncScopeKey struct{}

// inlineRun is one delivery a synchronous Publish makes: messages for one
// subscription.
type inlineRun struct {
	s    *subscription
	msgs []*broker.Message
}

// publishSync accepts msgs and delivers them to the matching subscriptions
// before it returns.
func (srv *Server) publishSync(ctx context.Context, msgs []*broker.Message) error {
	scope, nested := ctx.Value(syncScopeKey{}).(syncScope)
	if !nested {
		scope.c = &cascade{}
	}
	if err := scope.c.err(); err != nil {
		return err
	}
	if scope.depth >= SyncDepthLimit {
		err := fmt.Errorf("memory: publish to %s: handlers published %d levels deep: %w",
			msgs[0].Destination, scope.depth, ErrSyncLoop)
		scope.c.stop(err)
		return err
	}
	var runs []inlineRun
	srv.mu.Lock()
	now := time.Now()
	for _, m := range msgs {
		c := srv.accept(m, now)
		srv.dispatch(c, func(s *subscription) { runs = addToRun(runs, s, c) })
	}
	srv.mu.Unlock()
	inner := syncScope{c: scope.c, depth: scope.depth + 1}
	for _, r := range runs {
		srv.deliverInline(inner, r.s, r.msgs)
	}
	return scope.c.err()
}

// addToRun adds m to the deliveries of one Publish call: a delivery of its
// own for a plain subscription; for a batch subscription, the open batch
// while it has room.
func addToRun(runs []inlineRun, s *subscription, m *broker.Message) []inlineRun {
	if s.spec.Batch {
		for i := len(runs) - 1; i >= 0; i-- {
			if runs[i].s == s {
				if len(runs[i].msgs) < max(s.spec.BatchSize, 1) {
					runs[i].msgs = append(runs[i].msgs, m)
					return runs
				}
				break
			}
		}
	}
	return append(runs, inlineRun{s: s, msgs: []*broker.Message{m}})
}

// deliverInline delivers msgs to s in the calling goroutine until they are
// settled for good: a Nak delivers them again at once, to the next member
// of s's group as a queued redelivery would be. A subscription that closed
// meanwhile hands them to the rest of its group, or drops them when it has
// none, like the messages still queued at Close. It stops when the cascade
// has stopped.
func (srv *Server) deliverInline(scope syncScope, s *subscription, msgs []*broker.Message) {
	for n := 0; scope.c.err() == nil; {
		if !s.beginInline() {
			srv.mu.Lock()
			next := srv.redeliveryTarget(s)
			srv.mu.Unlock()
			if next == s {
				return
			}
			s = next
			continue
		}
		if n == SyncDeliveryLimit {
			s.inline.Done()
			scope.c.stop(fmt.Errorf("memory: deliver to %s: delivered %d times and still not settled: %w",
				s.spec.Destination, n, ErrSyncLoop))
			return
		}
		n++
		ack := &inlineAcker{}
		s.handOver(context.WithValue(s.ctx, syncScopeKey{}, scope), msgs, ack)
		s.inline.Done()
		if !ack.nak.Load() {
			return
		}
		again := make([]*broker.Message, len(msgs))
		for i, m := range msgs {
			c := *m
			c.Delivery.DeliveryCount++
			again[i] = &c
		}
		msgs = again
		srv.mu.Lock()
		s = srv.redeliveryTarget(s)
		srv.mu.Unlock()
	}
}

// inlineAcker settles an inline delivery: it only notes a Nak, which
// deliverInline acts on once the delivery has returned.
// The handler may settle from another goroutine, hence the atomic.
type inlineAcker struct{ nak atomic.Bool }

func (a *inlineAcker) Ack(context.Context) error  { return nil }
func (a *inlineAcker) Term(context.Context) error { return nil }
func (a *inlineAcker) Nak(context.Context, time.Duration) error {
	a.nak.Store(true)
	return nil
}
