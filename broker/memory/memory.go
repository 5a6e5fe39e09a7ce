package memory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tracebus/tracebus/broker"
)

// System is the messaging.system value the memory transport reports.
const System = "memory"

// Transport is an in-process broker.Transport. Create it with New. It is
// safe for concurrent use.
type Transport struct {
	mu     sync.RWMutex
	subs   []*subscription
	groups map[groupKey]*group
	seq    map[string]uint64
	closed bool
}

type groupKey struct{ pattern, name string }

// group shares messages between its members round-robin.
type group struct {
	members []*subscription
	next    int
}

// New returns an empty in-process transport.
func New() *Transport {
	return &Transport{groups: map[groupKey]*group{}, seq: map[string]uint64{}}
}

// Info implements broker.Transport.
func (t *Transport) Info() broker.Info { return broker.Info{System: System} }

// Publish implements broker.Transport: each message is copied and queued for
// every matching subscription (one member per group) before Publish returns.
func (t *Transport) Publish(ctx context.Context, msgs []*broker.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return broker.ErrClosed
	}
	now := time.Now()
	for _, m := range msgs {
		t.seq[m.Destination]++
		c := &broker.Message{
			Destination: m.Destination,
			Key:         cloneBytes(m.Key),
			Body:        cloneBytes(m.Body),
			Headers:     m.Headers.Clone(),
			ID:          m.ID,
			ReplyTo:     m.ReplyTo,
			Delivery: broker.Delivery{
				Sequence:  t.seq[m.Destination],
				Timestamp: now,
			},
		}
		if m.Partition != nil {
			c.Delivery.Partition = *m.Partition
		}
		for _, s := range t.subs {
			if s.spec.Group == "" && match(s.spec.Destination, m.Destination) {
				s.enqueue(c)
			}
		}
		for k, g := range t.groups {
			if match(k.pattern, m.Destination) && len(g.members) > 0 {
				g.next = (g.next + 1) % len(g.members)
				g.members[g.next].enqueue(c)
			}
		}
	}
	return nil
}

// Subscribe implements broker.Transport.
func (t *Transport) Subscribe(ctx context.Context, spec broker.SubscriptionSpec, deliver broker.DeliverFunc) (broker.Subscription, error) {
	if len(spec.TransportOptions) > 0 {
		return nil, fmt.Errorf("memory: subscribe %s: option %T: %w", spec.Destination, spec.TransportOptions[0], broker.ErrUnsupportedOption)
	}
	s := newSubscription(t, ctx, spec, deliver)
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, broker.ErrClosed
	}
	if spec.Group == "" {
		t.subs = append(t.subs, s)
	} else {
		k := groupKey{spec.Destination, spec.Group}
		g := t.groups[k]
		if g == nil {
			g = &group{}
			t.groups[k] = g
		}
		g.members = append(g.members, s)
	}
	t.mu.Unlock()
	s.start()
	return s, nil
}

// remove takes s out of routing; it receives no new messages afterwards.
func (t *Transport) remove(s *subscription) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.spec.Group == "" {
		t.subs = deleteSub(t.subs, s)
		return
	}
	k := groupKey{s.spec.Destination, s.spec.Group}
	if g := t.groups[k]; g != nil {
		g.members = deleteSub(g.members, s)
		if len(g.members) == 0 {
			delete(t.groups, k)
		}
	}
}

// requeue routes a message that asked for redelivery: back to s, or to
// another member of s's group when s has been closed meanwhile.
func (t *Transport) requeue(s *subscription, m *broker.Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	if s.spec.Group != "" {
		if g := t.groups[groupKey{s.spec.Destination, s.spec.Group}]; g != nil && len(g.members) > 0 {
			g.next = (g.next + 1) % len(g.members)
			g.members[g.next].enqueue(m)
			return
		}
	}
	s.enqueue(m)
}

// Close implements broker.Transport. Subscriptions still open stop
// receiving messages; publishing fails with broker.ErrClosed.
func (t *Transport) Close(context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	return nil
}

func deleteSub(list []*subscription, s *subscription) []*subscription {
	for i, x := range list {
		if x == s {
			return append(list[:i:i], list[i+1:]...)
		}
	}
	return list
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}
