package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Subscription stops and starts again the subscriptions of a Broker to one
// destination while the broker keeps running, as FastStream's
// subscriber.stop() and start() do. Broker.Subscription returns it.
//
// Stopping is on purpose: App.Ready stays ready while a subscription is
// stopped, since the service chose to pause it and its publishers, requests
// and other subscriptions still work. A Start whose transport refused to
// subscribe again makes App.Ready fail with ErrNotReady until a Start
// succeeds or Stop is called.
//
// What a restarted subscription receives is what the system keeps for it:
// a Kafka group and a JetStream durable consumer (Group or Name) resume at
// their committed position, so messages published while stopped are
// delivered after Start; core NATS, the memory transport, Kafka without a
// group and an ephemeral JetStream consumer receive only what is published
// after Start returned.
//
// A Subscription is safe for concurrent use.
type Subscription struct {
	b    *Broker
	dest string
	subs []*subscription
}

// Subscription returns the control of the subscriptions to destination
// registered on b so far (with Subscribe, SubscribeBatch, Handle and the
// other typed functions; under a Router, destination includes its prefix).
// Several subscriptions to destination (different groups, say) are stopped
// and started together. It fails with an error matching ErrInvalid when b
// has no subscription to destination.
func (b *Broker) Subscription(destination string) (*Subscription, error) {
	h := &Subscription{b: b, dest: destination}
	b.mu.Lock()
	for _, s := range b.subs {
		if s.cfg.spec.Destination == destination {
			h.subs = append(h.subs, s)
		}
	}
	b.mu.Unlock()
	if len(h.subs) == 0 {
		return nil, optionError("no subscription to %q", destination)
	}
	return h, nil
}

// Stop stops the subscription from taking new messages, waits for its
// handlers in flight to return and their messages to be settled, and
// releases its transport subscription (a Kafka group member leaves the
// group after committing). The rest of the broker keeps running. When ctx is
// done before the drain completes, the handlers' context is cancelled, their
// messages are handed back (redelivered where the system does that) and Stop
// returns an error wrapping ctx.Err(). Stopping a stopped subscription, or
// one of a closed broker, returns nil. A subscription stopped before the
// broker starts does not start with it.
func (h *Subscription) Stop(ctx context.Context) error {
	for _, s := range h.subs {
		s.mu.Lock()
		s.paused, s.down = true, nil
		s.mu.Unlock()
	}
	errs := make([]error, len(h.subs))
	var wg sync.WaitGroup
	for i, s := range h.subs {
		wg.Go(func() { errs[i] = s.stop(ctx) })
	}
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
		return errors.Join(errs...)
	case <-ctx.Done():
		select {
		case <-drained:
			return errors.Join(errs...)
		default:
		}
		// Each stop cancels its handlers once its transport gives up.
		return fmt.Errorf("tracebus: stop subscription to %s: drain did not finish: %w", h.dest, ctx.Err())
	}
}

// Start starts a stopped subscription again: at once when the broker is
// running, with the broker otherwise. It waits, within ctx, for a Stop
// still draining; the subscribe itself is bounded by the transport. It
// returns the transport's error when that refuses to subscribe (and the
// broker is not ready until a Start succeeds), ErrClosed once the broker
// is closing, and nil for a running subscription.
func (h *Subscription) Start(ctx context.Context) error {
	b := h.b
	b.mu.Lock()
	state, base := b.state.Load(), b.baseCtx
	b.mu.Unlock()
	if state == stateClosing || state == stateClosed {
		return ErrClosed
	}
	errs := make([]error, len(h.subs))
	for i, s := range h.subs {
		if err := s.unpause(ctx); err != nil {
			errs[i] = err
			continue
		}
		b.mu.Lock()
		listed := slices.Contains(b.subs, s) // not one whose Subscribe failed
		b.mu.Unlock()
		if state == stateNew || !listed {
			continue // Broker.Start starts it
		}
		err := s.start(base)
		s.mu.Lock()
		s.down = nil
		if err != nil && !errors.Is(err, ErrClosed) {
			err = fmt.Errorf("tracebus: start subscription to %s again: %w", h.dest, err)
			s.down = err
		}
		s.mu.Unlock()
		errs[i] = err
	}
	return errors.Join(errs...)
}

// unpause lets the subscription start again once a stop in progress has
// finished, or fails when ctx ends first.
func (s *subscription) unpause(ctx context.Context) error {
	for {
		s.mu.Lock()
		stopping := s.stopping
		if stopping == nil {
			s.paused = false
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		select {
		case <-stopping:
		case <-ctx.Done():
			return fmt.Errorf("tracebus: start subscription to %s: still stopping: %w",
				s.cfg.spec.Destination, ctx.Err())
		}
	}
}

// subscriptionsDown returns an error naming every subscription that a
// Subscription.Start failed to start again, or nil.
func (b *Broker) subscriptionsDown() error {
	b.mu.Lock()
	subs := slices.Clone(b.subs)
	b.mu.Unlock()
	var errs []error
	for _, s := range subs {
		s.mu.Lock()
		down := s.down
		s.mu.Unlock()
		if down != nil {
			errs = append(errs, down)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrNotReady, errors.Join(errs...))
}
