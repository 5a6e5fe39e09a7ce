package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/internal/wait"
)

// coreSub is a core NATS subscription, plain or batch, on a subject or
// pattern, optionally in a queue group.
//
// Core NATS delivers a message once, to whoever listens at that moment:
// there is no acknowledgement and no redelivery. A Nak is therefore
// honoured by the subscription: the same message is delivered again after
// the delay, with DeliveryCount increased. By default the message steps
// aside for the delay, so the messages behind it keep flowing; with
// OrderedRetries the worker that ran the handler waits the delay itself,
// which with concurrency 1 holds back the messages behind it and keeps
// their order.
//
// nats.go drops messages when the subscription's pending limits are
// exceeded (a slow consumer). The subscription reports every drop, counted
// from Subscription.Dropped, to the broker.
//
// Reconnects are nats.go's: it re-subscribes on the new connection.
type coreSub struct {
	t       *Transport
	spec    driver.SubscriptionSpec
	r       *runner
	sub     *natsgo.Subscription
	ordered bool   // OrderedRetries
	aside   flight // retries waiting aside

	dropMu     sync.Mutex
	dropped    int         // drops reported so far
	dropTimer  *time.Timer // polls Dropped while drops go on
	dropsFinal bool        // Close has taken the last count

	in         chan *natsgo.Msg // batch subscriptions: callback to batcher
	subClosed  chan struct{}    // the nats.go subscription has ended
	closedOnce sync.Once
	sourceDone chan struct{} // no message will reach the runner any more
	closing    atomic.Bool
}

func (t *Transport) subscribeCore(ctx context.Context, spec driver.SubscriptionSpec, deliver driver.DeliverFunc, sc *subConfig) (*coreSub, error) {
	s := &coreSub{
		t:         t,
		spec:      spec,
		r:         newRunner(ctx, deliver, spec.Concurrency),
		ordered:   sc.ordered,
		subClosed: make(chan struct{}),
	}
	t.watchSlowConsumers()
	handler := s.onMsg
	s.sourceDone = s.subClosed
	if spec.Batch {
		s.in = make(chan *natsgo.Msg)
		s.sourceDone = make(chan struct{})
		handler = s.enqueue
	}
	var err error
	if spec.Group != "" {
		s.sub, err = t.nc.QueueSubscribe(spec.Destination, spec.Group, handler)
	} else {
		s.sub, err = t.nc.Subscribe(spec.Destination, handler)
	}
	if err != nil {
		s.r.finish()
		return nil, fmt.Errorf("natsbroker: subscribe to %s: %w", spec.Destination, err)
	}
	if sc.pendingSet {
		if err := s.sub.SetPendingLimits(sc.pendingMsgs, sc.pendingBytes); err != nil {
			_ = s.sub.Unsubscribe()
			s.r.finish()
			return nil, fmt.Errorf("natsbroker: subscribe to %s: pending limits: %w", spec.Destination, err)
		}
	}
	t.mu.Lock()
	t.coreSubs[s.sub] = s
	t.mu.Unlock()
	s.sub.SetClosedHandler(func(string) { s.markClosed() })
	if !s.sub.IsValid() {
		s.markClosed() // closed before the handler was set
	}
	if spec.Batch {
		go s.batch()
	}
	// Make sure the server has registered the interest before Subscribe
	// returns, so that a publish from another connection right after it
	// is not missed. A failure (the connection is recovering) is not
	// fatal: nats.go subscribes again on reconnect.
	if err := flush(ctx, t.nc); err != nil {
		t.cfg.logger.Debug("natsbroker: flush after subscribe", "subject", spec.Destination, "error", err)
	}
	return s, nil
}

func (s *coreSub) markClosed() { s.closedOnce.Do(func() { close(s.subClosed) }) }

// onMsg is the nats.go callback of plain subscriptions. The first
// attempt's delivery is allocated here, holding m, so that one allocation
// serves the message, its slices and its acknowledger.
func (s *coreSub) onMsg(m *natsgo.Msg) {
	d := &coreDelivery{src: [1]*natsgo.Msg{m}}
	if s.r.inline {
		if !s.r.enter(s.r.abandon, nil) {
			s.lost(1)
			return
		}
		defer s.r.leave()
		s.runFrom(d.src[:], 1, d)
		return
	}
	if !s.r.submit(func() { s.runFrom(d.src[:], 1, d) }, s.r.abandon, nil) {
		s.lost(1)
	}
}

// enqueue is the nats.go callback of batch subscriptions: it hands the
// message to the batcher, waiting while the batcher waits for a worker.
func (s *coreSub) enqueue(m *natsgo.Msg) {
	select {
	case s.in <- m:
	case <-s.r.abandon:
		s.lost(1)
	}
}

// batch forms batches: up to BatchSize messages, delivered once that many
// arrived or BatchWait after the first one. It ends when the nats.go
// subscription has ended (after Close drained it), delivering what it holds.
func (s *coreSub) batch() {
	defer close(s.sourceDone)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var first *natsgo.Msg
		select {
		case first = <-s.in:
		case <-s.subClosed:
			return
		case <-s.r.abandon:
			return
		}
		msgs := make([]*natsgo.Msg, 1, s.spec.BatchSize)
		msgs[0] = first
		timer.Reset(s.spec.BatchWait)
		ended := false
	fill:
		for len(msgs) < s.spec.BatchSize {
			select {
			case m := <-s.in:
				msgs = append(msgs, m)
			case <-timer.C:
				break fill
			case <-s.subClosed:
				ended = true
				break fill
			}
		}
		timer.Stop()
		if !s.r.submit(func() { s.runFrom(msgs, 1, nil) }, s.r.abandon, nil) {
			s.lost(len(msgs))
			return
		}
		if ended {
			return
		}
	}
}

// runFrom delivers msgs as the attempt-th delivery, until they are settled
// by anything but a Nak. After a Nak it retries in place after the delay
// (OrderedRetries), or sets the messages aside for the delay and returns.
// first, when not nil, is the delivery of a single message to use for the
// first attempt; every later attempt gets a new one, since a handler may
// keep the message of an earlier attempt.
func (s *coreSub) runFrom(msgs []*natsgo.Msg, attempt int, first *coreDelivery) {
	for ; ; attempt++ {
		var (
			out []*broker.Message
			a   *coreAck
		)
		if len(msgs) == 1 {
			d := first
			if d == nil {
				d = &coreDelivery{}
			}
			first = nil
			coreMessage(&d.msg, msgs[0], &s.spec, attempt)
			d.msgs[0] = &d.msg
			out, a = d.msgs[:], &d.ack
		} else {
			out = make([]*broker.Message, len(msgs))
			for i, m := range msgs {
				out[i] = new(broker.Message)
				coreMessage(out[i], m, &s.spec, attempt)
			}
			a = new(coreAck)
		}
		s.r.deliver(s.r.ctx, out, a)
		if !a.retry {
			return
		}
		if !s.ordered {
			s.retryAside(msgs, attempt+1, a.delay)
			return
		}
		if !s.pause(a.delay) {
			s.lost(len(msgs))
			return
		}
	}
}

// retryAside delivers msgs again as the attempt-th delivery after delay,
// on a goroutine of its own, while the subscription goes on with the
// messages behind them. The delivery takes its turn among the others, so
// the subscription's concurrency holds.
func (s *coreSub) retryAside(msgs []*natsgo.Msg, attempt int, delay time.Duration) {
	s.aside.add()
	go func() {
		if !s.pause(delay) {
			s.lost(len(msgs))
			s.aside.done()
			return
		}
		// The job ends the wait only when it is done, so a retry it sets
		// aside in turn is counted before this one leaves.
		job := func() {
			defer s.aside.done()
			s.runFrom(msgs, attempt, nil)
		}
		if !s.r.submit(job, s.r.abandon, nil) {
			s.lost(len(msgs))
			s.aside.done()
		}
	}()
}

// pause waits d, unless Close gives up on the subscription first.
func (s *coreSub) pause(d time.Duration) bool { return wait.Sleep(d, s.r.abandon) }

// lost logs core messages that were received but could not be delivered
// because Close gave up waiting: core NATS cannot hand them back.
func (s *coreSub) lost(n int) {
	s.t.cfg.logger.Warn("natsbroker: subscription closed before core NATS messages were handled; they are lost",
		"subject", s.spec.Destination, "messages", n)
}

// Close stops taking messages, lets the messages nats.go has already
// received be delivered (a drain), and waits until every delivery,
// including retries in place, has been settled. When ctx ends first, it
// returns an error wrapping ctx.Err() and abandons what is left.
func (s *coreSub) Close(ctx context.Context) error {
	if !s.closing.CompareAndSwap(false, true) {
		return nil
	}
	defer s.t.untrack(s)
	s.r.stopTaking()
	s.lastDrops()
	if err := s.sub.Drain(); err != nil {
		s.markClosed() // the subscription or the connection is already gone
	}
	if err := waitFor(ctx, s.sourceDone); err != nil {
		s.r.giveUp()
		_ = s.sub.Unsubscribe()
		return fmt.Errorf("natsbroker: close subscription to %s: %w", s.spec.Destination, err)
	}
	if err := s.aside.wait(ctx); err != nil {
		s.r.giveUp()
		return fmt.Errorf("natsbroker: close subscription to %s: %w", s.spec.Destination, err)
	}
	s.r.finish()
	if err := s.r.wait(ctx); err != nil {
		s.r.giveUp()
		return fmt.Errorf("natsbroker: close subscription to %s: %w", s.spec.Destination, err)
	}
	return nil
}

// dropPoll is how often a subscription that dropped messages checks for
// more: nats.go reports a slow consumer once, until a message gets through
// again, not once per message dropped.
const dropPoll = 500 * time.Millisecond

// checkDrops reports the messages nats.go dropped since the last check.
func (s *coreSub) checkDrops() {
	s.dropMu.Lock()
	n, err := s.sub.Dropped()
	if err != nil || n <= s.dropped {
		s.dropMu.Unlock()
		return
	}
	delta := n - s.dropped
	s.dropped = n
	if s.dropTimer == nil && !s.dropsFinal {
		s.dropTimer = time.AfterFunc(dropPoll, s.pollDrops)
	}
	s.dropMu.Unlock()
	if ev := s.spec.Events; ev != nil {
		ev.Dropped(s.r.ctx, delta, dropSlowConsumer)
		return
	}
	s.t.cfg.logger.Warn("natsbroker: slow consumer: nats.go dropped messages of a core subscription",
		"subject", s.spec.Destination, "messages", delta)
}

// pollDrops checks again after a drop; checkDrops re-arms it while drops go
// on.
func (s *coreSub) pollDrops() {
	s.dropMu.Lock()
	s.dropTimer = nil
	s.dropMu.Unlock()
	s.checkDrops()
}

// lastDrops takes the final count when the subscription closes: the
// pending limits are lifted first, so that nothing is dropped after it
// (what arrives while the subscription drains is bounded by what the
// server sent before it learnt of the unsubscribe).
func (s *coreSub) lastDrops() {
	s.dropMu.Lock()
	s.dropsFinal = true
	if s.dropTimer != nil {
		s.dropTimer.Stop()
		s.dropTimer = nil
	}
	s.dropMu.Unlock()
	_ = s.sub.SetPendingLimits(-1, -1)
	s.checkDrops()
}

// watchSlowConsumers installs, once per transport, an asynchronous error
// handler on the connection that checks a core subscription's drops when
// nats.go reports it as a slow consumer. The handler the connection had is
// called too; one set on the connection after the transport was created
// replaces this one, and drops are then only counted when the
// subscription closes.
func (t *Transport) watchSlowConsumers() {
	t.errOnce.Do(func() {
		prev := t.nc.ErrorHandler()
		t.nc.SetErrorHandler(func(nc *natsgo.Conn, sub *natsgo.Subscription, err error) {
			if sub != nil && errors.Is(err, natsgo.ErrSlowConsumer) {
				t.mu.Lock()
				s := t.coreSubs[sub]
				t.mu.Unlock()
				if s != nil {
					s.checkDrops()
				}
			}
			if prev != nil {
				prev(nc, sub, err)
			}
		})
	})
}

// flight counts work under way that Close must wait for, such as retries
// set aside.
type flight struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0
}

func (f *flight) add() {
	f.mu.Lock()
	if f.n == 0 {
		f.idle = make(chan struct{})
	}
	f.n++
	f.mu.Unlock()
}

func (f *flight) done() {
	f.mu.Lock()
	f.n--
	if f.n == 0 {
		close(f.idle)
	}
	f.mu.Unlock()
}

// wait waits until nothing is under way or ctx is done.
func (f *flight) wait(ctx context.Context) error {
	f.mu.Lock()
	if f.n == 0 {
		f.mu.Unlock()
		return nil
	}
	idle := f.idle
	f.mu.Unlock()
	return waitFor(ctx, idle)
}
