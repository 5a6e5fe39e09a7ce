package memory

import (
	"context"
	"sync"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
)

// subscription owns a FIFO queue and the workers that deliver from it.
type subscription struct {
	srv     *Server
	ctx     context.Context
	spec    driver.SubscriptionSpec
	deliver driver.DeliverFunc
	pull    bool // a Puller's: no workers, next takes from the queue

	mu      sync.Mutex
	queue   []*broker.Message
	ready   chan struct{} // signalled when the queue grows
	stop    chan struct{} // closed by Close: take no new messages
	stopped bool
	timers  map[*time.Timer]struct{}

	workers   sync.WaitGroup
	inline    sync.WaitGroup // deliveries made by a synchronous Publish
	closeOnce sync.Once
	done      chan struct{} // closed when every worker and inline delivery returned
}

func newSubscription(srv *Server, ctx context.Context, spec driver.SubscriptionSpec, deliver driver.DeliverFunc) *subscription {
	return &subscription{
		srv:     srv,
		ctx:     ctx,
		spec:    spec,
		deliver: deliver,
		ready:   make(chan struct{}, 1),
		stop:    make(chan struct{}),
		timers:  map[*time.Timer]struct{}{},
		done:    make(chan struct{}),
	}
}

func (s *subscription) start() {
	for range max(s.spec.Concurrency, 1) {
		if s.pull {
			break
		}
		s.workers.Go(s.work)
	}
	go func() {
		s.workers.Wait()
		// Once stop is closed no inline delivery begins (see
		// beginInline), so waiting for those in flight is safe.
		<-s.stop
		s.inline.Wait()
		close(s.done)
	}()
}

func (s *subscription) enqueue(m *broker.Message) {
	s.mu.Lock()
	if !s.stopped {
		s.queue = append(s.queue, m)
	}
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// take removes up to n messages from the queue.
func (s *subscription) take(n int) []*broker.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	n = min(n, len(s.queue))
	if n == 0 {
		return nil
	}
	out := make([]*broker.Message, n)
	copy(out, s.queue)
	clear(s.queue[:n])
	s.queue = s.queue[n:]
	if len(s.queue) > 0 {
		// Wake another worker for the rest.
		select {
		case s.ready <- struct{}{}:
		default:
		}
	}
	return out
}

func (s *subscription) work() {
	size := 1
	if s.spec.Batch {
		size = s.spec.BatchSize
	}
	for {
		select {
		case <-s.stop:
			return
		case <-s.ready:
		}
		msgs := s.take(size)
		if len(msgs) == 0 {
			continue
		}
		if s.spec.Batch && len(msgs) < size {
			msgs = s.fill(msgs, size)
		}
		s.run(msgs)
	}
}

// fill waits up to BatchWait for a batch to reach size messages.
func (s *subscription) fill(msgs []*broker.Message, size int) []*broker.Message {
	timer := time.NewTimer(s.spec.BatchWait)
	defer timer.Stop()
	for len(msgs) < size {
		select {
		case <-timer.C:
			return msgs
		case <-s.stop:
			return msgs
		case <-s.ready:
			msgs = append(msgs, s.take(size-len(msgs))...)
		}
	}
	return msgs
}

// run hands copies of msgs to the broker; the queued originals stay
// untouched so a redelivery starts from what was published.
func (s *subscription) run(msgs []*broker.Message) {
	s.handOver(s.ctx, msgs, &acker{s: s, msgs: msgs})
}

// handOver calls the broker's DeliverFunc with ctx, copies of msgs marked
// with this subscription and one more delivery, and ack.
func (s *subscription) handOver(ctx context.Context, msgs []*broker.Message, ack driver.Acknowledger) {
	out := make([]*broker.Message, len(msgs))
	for i, m := range msgs {
		c := m.Clone()
		c.Delivery.Subscription = s.spec.Destination
		c.Delivery.Group = s.spec.Group
		c.Delivery.DeliveryCount++
		out[i] = c
	}
	s.deliver(ctx, out, ack)
}

// beginInline registers a delivery made outside the workers, by a
// synchronous Publish; it reports false once the subscription is closing.
// Close waits for the registered deliveries like for its workers.
func (s *subscription) beginInline() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	s.inline.Add(1)
	return true
}

// redeliver queues msgs again after delay, one delivery later.
func (s *subscription) redeliver(msgs []*broker.Message, delay time.Duration) {
	again := make([]*broker.Message, len(msgs))
	for i, m := range msgs {
		c := *m
		c.Delivery.DeliveryCount++
		again[i] = &c
	}
	requeue := func() {
		for _, m := range again {
			s.srv.requeue(s, m)
		}
	}
	if delay <= 0 {
		requeue()
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		// Closed: the rest of the group, if any, gets the messages once
		// the delay has passed; a subscription of its own has nobody to
		// hand them to.
		if s.spec.Group != "" {
			time.AfterFunc(delay, requeue)
		}
		return
	}
	var timer *time.Timer
	timer = time.AfterFunc(delay, func() {
		s.mu.Lock()
		delete(s.timers, timer)
		s.mu.Unlock()
		requeue()
	})
	s.timers[timer] = struct{}{}
}

// Close implements driver.Subscription.
func (s *subscription) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.srv.remove(s)
		s.mu.Lock()
		s.stopped = true
		queued := s.queue
		s.queue = nil
		// Pending redeliveries of a group member stay scheduled: when
		// due, requeue hands them to the rest of the group. Those of a
		// subscription of its own would only be dropped.
		if s.spec.Group == "" {
			for timer := range s.timers {
				timer.Stop()
			}
			clear(s.timers)
		}
		s.mu.Unlock()
		close(s.stop)
		// Messages still queued go to the rest of the group; a
		// subscription of its own has nobody to hand them to.
		if s.spec.Group != "" {
			for _, m := range queued {
				s.srv.requeue(s, m)
			}
		}
	})
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type acker struct {
	s    *subscription
	msgs []*broker.Message
}

func (a *acker) Ack(context.Context) error  { return nil }
func (a *acker) Term(context.Context) error { return nil }
func (a *acker) Nak(_ context.Context, delay time.Duration) error {
	a.s.redeliver(a.msgs, delay)
	return nil
}
