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
// publishes nested beyond SyncDepthLimit.
var ErrSyncLoop = errors.New("memory: synchronous delivery does not end")

// syncDepthKey marks the deliver ctx of an inline delivery with how deep it
// is nested; a handler publishing with its ctx carries it to Publish.
type syncDepthKey struct{}

// inlineRun is one delivery a synchronous Publish makes: messages for one
// subscription.
type inlineRun struct {
	s    *subscription
	msgs []*broker.Message
}

// publishSync accepts msgs and delivers them to the matching subscriptions
// before it returns.
func (srv *Server) publishSync(ctx context.Context, msgs []*broker.Message) error {
	depth, _ := ctx.Value(syncDepthKey{}).(int)
	if depth >= SyncDepthLimit {
		return fmt.Errorf("memory: publish to %s: handlers published %d levels deep: %w",
			msgs[0].Destination, depth, ErrSyncLoop)
	}
	var runs []inlineRun
	srv.mu.Lock()
	now := time.Now()
	for _, m := range msgs {
		c := srv.accept(m, now)
		srv.route(c.Destination, func(s *subscription) { runs = addToRun(runs, s, c) })
	}
	srv.mu.Unlock()
	var errs []error
	for _, r := range runs {
		if err := srv.deliverInline(depth+1, r.s, r.msgs); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
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
// none, like the messages still queued at Close.
func (srv *Server) deliverInline(depth int, s *subscription, msgs []*broker.Message) error {
	for n := 0; ; {
		if !s.beginInline() {
			srv.mu.Lock()
			next := srv.redeliveryTarget(s)
			srv.mu.Unlock()
			if next == s {
				return nil
			}
			s = next
			continue
		}
		if n == SyncDeliveryLimit {
			s.inline.Done()
			return fmt.Errorf("memory: deliver to %s: delivered %d times and still not settled: %w",
				s.spec.Destination, n, ErrSyncLoop)
		}
		n++
		ack := &inlineAcker{}
		s.handOver(context.WithValue(s.ctx, syncDepthKey{}, depth), msgs, ack)
		s.inline.Done()
		if !ack.nak.Load() {
			return nil
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
