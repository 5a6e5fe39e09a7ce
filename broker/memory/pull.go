package memory

import (
	"context"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
)

// Pull implements driver.Puller: the subscription queues what is published
// to spec.Destination (shared with the rest of its group, if any) and next
// takes the oldest queued message. A Nak queues the message again after
// its delay, as for Subscribe.
func (t *Transport) Pull(_ context.Context, spec driver.SubscriptionSpec) (driver.Subscription, func(context.Context) (*broker.Message, driver.Acknowledger, error), error) {
	if err := t.ValidateSubscription(spec); err != nil {
		return nil, nil, err
	}
	if t.isClosed() {
		return nil, nil, broker.ErrClosed
	}
	// Pulled messages are handed over by next, in the caller's goroutine;
	// the subscription runs no workers.
	s := newSubscription(t.srv, context.Background(), spec, nil)
	s.pull = true
	t.register(s)
	s.start()
	return s, s.next, nil
}

// next takes one queued message for a Get.
func (s *subscription) next(ctx context.Context) (*broker.Message, driver.Acknowledger, error) {
	for {
		if msgs := s.take(1); len(msgs) == 1 {
			c := msgs[0].Clone()
			c.Delivery.Subscription = s.spec.Destination
			c.Delivery.Group = s.spec.Group
			c.Delivery.DeliveryCount++
			return c, &acker{s: s, msgs: msgs}, nil
		}
		select {
		case <-s.ready:
		case <-s.stop:
			return nil, nil, broker.ErrClosed
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}
