package memory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/internal/syncerrs"
)

// Bounds of synchronous delivery (WithSyncDelivery), so that a test whose
// handlers never settle for good fails instead of hanging.
const (
	// syncDeliveryLimit is how many times a message is delivered to one
	// subscription, redeliveries included, within one synchronous Publish.
	syncDeliveryLimit = 100
	// syncDepthLimit is how deep synchronous publishes made by handlers
	// nest.
	syncDepthLimit = 64
)

// ErrSyncLoop is wrapped by the error of a synchronous Publish that
// stopped delivering because a message was delivered 100 times to one
// subscription or publishes nested 64 deep. Everything that Publish caused
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
	trail *hop // how the cascade got here, to name a loop
	// errs collects the handler failures for the test harness
	// (testutil.WithHandlerErrors), when the publish's ctx carried it:
	// each delivery's ctx carries it on.
	errs *syncerrs.Collector
}

// hop is one step of a cascade: a destination published to, or the
// pattern of the subscription that took the message. The steps alternate,
// from the outermost publish on; each delivery extends its parent's trail
// without changing it.
type hop struct {
	name   string
	parent *hop
}

// loopText names the loop at the end of trail followed by dest: the
// shortest sequence of (subscription, destination) steps that repeats at
// the end of the trail, from the step the cascade entered it with, as
// "orders.* → orders.rejected → orders.*". Without such a repetition it
// shows the last steps.
func loopText(trail *hop, dest string) string {
	names := []string{dest}
	for h := trail; h != nil; h = h.parent {
		names = append(names, h.name)
	}
	slices.Reverse(names)
	// names is D0 S1 D1 S2 D2 ... Sn Dn: the steps are the (Si, Di)
	// pairs that follow the outermost publish D0.
	type step struct{ sub, dest string }
	steps := make([]step, 0, len(names)/2)
	for i := 1; i+1 < len(names); i += 2 {
		steps = append(steps, step{names[i], names[i+1]})
	}
	n := len(steps)
	for k := 1; 2*k <= n; k++ {
		if !slices.Equal(steps[n-k:], steps[n-2*k:n-k]) {
			continue
		}
		// The loop was entered where the periodic tail begins.
		first := n - k
		for first > 0 && steps[first-1] == steps[first-1+k] {
			first--
		}
		var loop []string
		for _, st := range steps[first : first+k] {
			loop = appendNew(loop, st.sub)
			loop = appendNew(loop, st.dest)
		}
		loop = append(loop, steps[first].sub) // back where it began
		return strings.Join(loop, " → ")
	}
	const show = 8
	if len(names) > show {
		return "… → " + strings.Join(names[len(names)-show:], " → ")
	}
	return strings.Join(names, " → ")
}

// appendNew appends name unless it repeats the last element.
func appendNew(names []string, name string) []string {
	if len(names) > 0 && names[len(names)-1] == name {
		return names
	}
	return append(names, name)
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
	scope.errs = syncerrs.FromContext(ctx)
	if err := scope.c.err(); err != nil {
		return err
	}
	if scope.depth >= syncDepthLimit {
		err := fmt.Errorf("memory: publish to %s: handlers published %d levels deep, in the loop %s: %w",
			msgs[0].Destination, scope.depth, loopText(scope.trail, msgs[0].Destination), ErrSyncLoop)
		scope.c.stop(err)
		return err
	}
	var runs []inlineRun
	srv.mu.Lock()
	now := time.Now()
	for _, m := range msgs {
		c := srv.accept(m, now)
		srv.dispatch(c, func(s *subscription) {
			if s.pull {
				s.enqueue(c) // taken when a Get asks
				return
			}
			runs = addToRun(runs, s, c)
		})
	}
	srv.mu.Unlock()
	for _, r := range runs {
		inner := syncScope{c: scope.c, depth: scope.depth + 1, trail: &hop{name: r.msgs[0].Destination, parent: scope.trail}, errs: scope.errs}
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
		if s.pull {
			// A Puller of the group: the messages wait in its queue
			// for a Get.
			for _, m := range msgs {
				s.enqueue(m)
			}
			return
		}
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
		if n == syncDeliveryLimit {
			s.inline.Done()
			scope.c.stop(fmt.Errorf("memory: deliver to %s: delivered %d times and still not settled: %w",
				s.spec.Destination, n, ErrSyncLoop))
			return
		}
		n++
		ack := &inlineAcker{}
		in := scope
		in.trail = &hop{name: s.spec.Destination, parent: scope.trail}
		ctx := context.WithValue(s.ctx, syncScopeKey{}, in)
		if in.errs != nil {
			ctx = syncerrs.NewContext(ctx, in.errs)
		}
		s.handOver(ctx, msgs, ack)
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
