package natsbroker

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/internal/wait"
)

// coreSub is a core NATS subscription, plain or batch, on a subject or
// pattern, optionally in a queue group.
//
// Core NATS delivers a message once, to whoever listens at that moment:
// there is no acknowledgement and no redelivery. A Nak is therefore
// honoured in place: the worker that ran the handler waits the delay and
// delivers the same message again with DeliveryCount increased. With
// concurrency 1 this holds back the messages behind it, which keeps their
// order.
//
// Reconnects are nats.go's: it re-subscribes on the new connection.
type coreSub struct {
	t    *Transport
	spec broker.SubscriptionSpec
	r    *runner
	sub  *natsgo.Subscription

	in         chan *natsgo.Msg // batch subscriptions: callback to batcher
	subClosed  chan struct{}    // the nats.go subscription has ended
	closedOnce sync.Once
	sourceDone chan struct{} // no message will reach the runner any more
	closing    atomic.Bool
}

func (t *Transport) subscribeCore(ctx context.Context, spec broker.SubscriptionSpec, deliver broker.DeliverFunc) (*coreSub, error) {
	s := &coreSub{
		t:         t,
		spec:      spec,
		r:         newRunner(ctx, deliver, spec.Concurrency),
		subClosed: make(chan struct{}),
	}
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

// onMsg is the nats.go callback of plain subscriptions.
func (s *coreSub) onMsg(m *natsgo.Msg) {
	if s.r.inline {
		if !s.r.enter(s.r.abandon) {
			s.lost(1)
			return
		}
		defer s.r.leave()
		s.run([]*natsgo.Msg{m})
		return
	}
	if !s.r.submit(func() { s.run([]*natsgo.Msg{m}) }, s.r.abandon, nil) {
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
		if !s.r.submit(func() { s.run(msgs) }, s.r.abandon, nil) {
			s.lost(len(msgs))
			return
		}
		if ended {
			return
		}
	}
}

// run delivers msgs until they are settled by anything but a Nak, retrying
// in place after each Nak's delay.
func (s *coreSub) run(msgs []*natsgo.Msg) {
	for attempt := 1; ; attempt++ {
		var (
			out []*broker.Message
			a   *coreAck
		)
		if len(msgs) == 1 {
			d := &coreDelivery{}
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
		if !s.pause(a.delay) {
			s.lost(len(msgs))
			return
		}
	}
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
	if err := s.sub.Drain(); err != nil {
		s.markClosed() // the subscription or the connection is already gone
	}
	if err := waitFor(ctx, s.sourceDone); err != nil {
		s.r.giveUp()
		_ = s.sub.Unsubscribe()
		return fmt.Errorf("natsbroker: close subscription to %s: %w", s.spec.Destination, err)
	}
	s.r.finish()
	if err := s.r.wait(ctx); err != nil {
		s.r.giveUp()
		return fmt.Errorf("natsbroker: close subscription to %s: %w", s.spec.Destination, err)
	}
	return nil
}
