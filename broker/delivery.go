package broker

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/tracebus/tracebus/broker/driver"
)

// errAlreadySettled is returned by a Settler whose delivery was settled
// before: by the handler, or by the broker for an ack-first subscription. It
// is a misuse, so it matches ErrInvalid.
var errAlreadySettled = fmt.Errorf("tracebus: delivery already settled: %w", ErrInvalid)

// Settler settles the delivery a handler is processing, from inside the
// handler: for subscriptions made with ManualAck, or to settle early.
// Settling goes through the settle middleware (settle spans and metrics)
// like the broker's own settlement; the first settlement wins and later
// ones return an error matching ErrInvalid. A handler that returns without settling
// leaves it to the broker, which applies the usual outcome policy to the
// handler's result.
type Settler interface {
	// Ack reports the messages processed (JetStream ack, Kafka commit).
	Ack(ctx context.Context) error
	// Nak asks for the messages to be delivered again, not before delay.
	// It does not count against MaxAttempts' dead-lettering: the broker
	// only decides on results it settles itself.
	Nak(ctx context.Context, delay time.Duration) error
	// Term reports that the messages must never be delivered again.
	Term(ctx context.Context) error
	// InProgress tells the server the messages are still being worked
	// on, postponing redelivery (JetStream in-progress, +WPI). It does not
	// settle. On transports without the notion (core NATS, Kafka, memory)
	// it does nothing and returns an error matching errors.ErrUnsupported.
	InProgress(ctx context.Context) error
}

// delivery is one call of a subscription's DeliverFunc: the messages, their
// Acknowledger and the state of their settlement. It reaches the handler's
// ctx as its single context value.
type delivery struct {
	s          *subscription
	msgs       []*Message
	ack        driver.Acknowledger
	handlerCtx context.Context
	view       []*Message                            // what a typed batch handler got, when it differs from msgs
	handle     func(context.Context, *Message) error // a Puller's Get: its handler, in place of the subscription's
	settled    atomic.Bool                           // a settlement started
	applied    atomic.Bool                           // the Acknowledger was called
}

type deliveryKey struct{}

// settlingKey marks the ctx of a settle chain with the delivery it
// settles; the innermost settle func applies the settlement to it.
type settlingKey struct{}

func deliveryFrom(ctx context.Context) *delivery {
	d, _ := ctx.Value(deliveryKey{}).(*delivery)
	return d
}

// settle runs st through the subscription's settle chain once. When a settle
// middleware drops the delivery from the Settlement, or panics before the
// Acknowledger ran, the delivery is settled directly so that it is never
// left unsettled.
func (d *delivery) settle(ctx context.Context, st driver.Settlement) (err error) {
	if !d.settled.CompareAndSwap(false, true) {
		return errAlreadySettled
	}
	sctx := context.WithValue(ctx, settlingKey{}, d)
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
		if !d.applied.Load() {
			err = errors.Join(err, d.apply(ctx, st))
		}
	}()
	err = d.s.settle(sctx, d.s.settleO, d.msgs, st)
	if errors.Is(err, errNoDelivery) {
		err = nil // settled directly by the deferred call
	}
	return err
}

// apply calls the transport's Acknowledger.
func (d *delivery) apply(ctx context.Context, st driver.Settlement) error {
	if !d.applied.CompareAndSwap(false, true) {
		return nil
	}
	switch st.Action {
	case driver.Ack:
		return d.ack.Ack(ctx)
	case driver.Nak:
		return d.ack.Nak(ctx, st.Delay)
	default:
		return d.ack.Term(ctx)
	}
}

// Ack implements Settler.
func (d *delivery) Ack(ctx context.Context) error {
	return d.settle(ctx, driver.Settlement{Action: driver.Ack})
}

// Nak implements Settler.
func (d *delivery) Nak(ctx context.Context, delay time.Duration) error {
	return d.settle(ctx, driver.Settlement{Action: driver.Nak, Delay: max(delay, 0)})
}

// Term implements Settler.
func (d *delivery) Term(ctx context.Context) error {
	return d.settle(ctx, driver.Settlement{Action: driver.Term})
}

// InProgress implements Settler.
func (d *delivery) InProgress(ctx context.Context) error {
	if d.settled.Load() {
		return errAlreadySettled
	}
	if p, ok := d.ack.(driver.ProgressReporter); ok {
		return p.InProgress(ctx)
	}
	return errProgressUnsupported
}

// MessageFromContext returns the message a handler is processing: the
// only message of a Subscribe or Handle delivery, the first of a batch.
// Typed handlers reach headers, key and delivery facts through it. It
// returns nil outside a handler.
func MessageFromContext(ctx context.Context) *Message {
	if d := deliveryFrom(ctx); d != nil && len(d.msgs) > 0 {
		return d.msgs[0]
	}
	return nil
}

// BatchFromContext returns the messages of the delivery a handler is
// processing, in delivery order (one for single-message subscriptions);
// for HandleBatch, the messages aligned with the handler's values. It
// returns nil outside a handler.
func BatchFromContext(ctx context.Context) []*Message {
	if d := deliveryFrom(ctx); d != nil {
		if d.view != nil {
			return d.view
		}
		return d.msgs
	}
	return nil
}

// SettlerFromContext returns the Settler of the delivery a handler is
// processing, or nil outside a handler.
func SettlerFromContext(ctx context.Context) Settler {
	if d := deliveryFrom(ctx); d != nil {
		return d
	}
	return nil
}

// RetryAfter returns an error that asks for the message to be delivered
// again after delay instead of the subscription's backoff. The attempt
// still counts: after MaxAttempts the message is dead-lettered or dropped.
// RetryAfter(nil, d) returns nil.
func RetryAfter(err error, delay time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryError{Err: err, Delay: max(delay, 0)}
}

// retryError is the error RetryAfter makes.
type retryError struct {
	// Err is the handler's error.
	Err error
	// Delay is the wait before the next delivery.
	Delay time.Duration
}

// Error returns the text of Err.
func (e *retryError) Error() string { return e.Err.Error() }

// Unwrap returns Err.
func (e *retryError) Unwrap() error { return e.Err }

func retryDelay(err error) (time.Duration, bool) {
	var re *retryError
	if errors.As(err, &re) {
		return re.Delay, true
	}
	return 0, false
}
