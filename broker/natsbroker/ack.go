package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/tracebus/tracebus/broker/driver"
)

// coreAck settles a core NATS delivery. Core NATS has no acknowledgements
// and no redelivery, so Ack and Term only record the outcome, and Nak asks
// the subscription to deliver the same message again, in place, after the
// delay.
type coreAck struct {
	retry bool
	delay time.Duration
}

func (a *coreAck) Ack(context.Context) error  { return nil }
func (a *coreAck) Term(context.Context) error { return nil }

func (a *coreAck) Nak(_ context.Context, delay time.Duration) error {
	a.retry, a.delay = true, delay
	return nil
}

// ErrMaxHandlingTime is returned when a handler settles (or reports
// progress on) a JetStream delivery that the transport already gave back to
// the server because the handler ran past its maximum handling time (see
// MaxHandlingTime): the late settlement is ignored.
var ErrMaxHandlingTime = errors.New("natsbroker: handler ran past the maximum handling time; its messages were given back")

// jsAck settles a JetStream delivery of one or more messages: ack, nak
// with a redelivery delay, or term. Settling ends the keep-alive; once the
// keep-alive gave the delivery up, settling does nothing.
type jsAck struct {
	msgs []jetstream.Msg
	seqs []uint64 // stream sequences of msgs, 0 when unknown
	pos  *position
	keep *keepAlive
}

var _ driver.ProgressReporter = (*jsAck)(nil)

func (a *jsAck) Ack(context.Context) error {
	if a.keep.stop() {
		return ErrMaxHandlingTime
	}
	return a.settle(a.each("ack", jetstream.Msg.Ack))
}

func (a *jsAck) Nak(_ context.Context, delay time.Duration) error {
	if a.keep.stop() {
		return ErrMaxHandlingTime
	}
	if delay <= 0 {
		return a.each("nak", jetstream.Msg.Nak)
	}
	return a.each("nak", func(m jetstream.Msg) error { return m.NakWithDelay(delay) })
}

func (a *jsAck) Term(context.Context) error {
	if a.keep.stop() {
		return ErrMaxHandlingTime
	}
	return a.settle(a.each("term", jetstream.Msg.Term))
}

// InProgress implements driver.ProgressReporter: it tells the server the
// messages are still being worked on (+WPI), which restarts their
// AckWait, and restarts the maximum handling time.
func (a *jsAck) InProgress(context.Context) error {
	if !a.keep.progress() {
		return ErrMaxHandlingTime
	}
	return a.each("in progress", jetstream.Msg.InProgress)
}

// settle records a final settlement in the subscription's position. When
// it failed, the messages stay open: the server delivers them again.
func (a *jsAck) settle(err error) error {
	if err == nil {
		for _, seq := range a.seqs {
			a.pos.settled(seq)
		}
	}
	return err
}

func (a *jsAck) each(op string, f func(jetstream.Msg) error) error {
	var errs []error
	for _, m := range a.msgs {
		if err := f(m); err != nil {
			errs = append(errs, fmt.Errorf("natsbroker: %s %s: %w", op, m.Subject(), err))
		}
	}
	return errors.Join(errs...)
}

// keepAlive tells the server that a delivery is still being worked on
// (JetStream "in progress", +WPI) every so often, below the consumer's
// AckWait, so that a long handler is not raced by a redelivery of its own
// message. It costs a timer, not a goroutine, per delivery.
//
// It does so for at most limit after the delivery began or the handler
// last reported progress itself (Settler.InProgress): then it stops, marks
// the delivery given up (later settlements are ignored) and calls onHung,
// which hands the messages back. Without that cap a hung handler would hold
// its message forever.
type keepAlive struct {
	mu       sync.Mutex
	msgs     []jetstream.Msg
	every    time.Duration
	limit    time.Duration // 0: no cap
	deadline time.Time
	onHung   func()
	timer    *time.Timer
	stopped  bool // settled or given up
	hung     bool // given up
}

// start starts reporting progress on msgs every interval, for at most
// limit (0: without a cap), after which it calls onHung. k is the zero
// keepAlive, which the caller may embed in a delivery of its own.
func (k *keepAlive) start(msgs []jetstream.Msg, every, limit time.Duration, onHung func()) {
	k.msgs, k.every, k.limit, k.onHung = msgs, every, limit, onHung
	now := time.Now()
	k.mu.Lock()
	if limit > 0 {
		k.deadline = now.Add(limit)
	}
	k.timer = time.AfterFunc(k.next(now), k.fire)
	k.mu.Unlock()
}

// next is the wait until the next report or the deadline.
func (k *keepAlive) next(now time.Time) time.Duration {
	if k.limit > 0 {
		return max(min(k.every, k.deadline.Sub(now)), 0)
	}
	return k.every
}

func (k *keepAlive) fire() {
	k.mu.Lock()
	if k.stopped {
		k.mu.Unlock()
		return
	}
	now := time.Now()
	if k.limit > 0 && !now.Before(k.deadline) {
		k.stopped, k.hung = true, true
		k.mu.Unlock()
		k.onHung()
		return
	}
	defer k.mu.Unlock()
	for _, m := range k.msgs {
		// A failed in-progress report is not fatal: at worst the message
		// is redelivered after AckWait, which JetStream allows anyway.
		_ = m.InProgress()
	}
	k.timer.Reset(k.next(now))
}

// progress restarts the maximum handling time after the handler reported
// progress itself. It reports false when the delivery was given up.
func (k *keepAlive) progress() bool {
	if k == nil {
		return true
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.hung {
		return false
	}
	if !k.stopped && k.limit > 0 {
		now := time.Now()
		k.deadline = now.Add(k.limit)
		k.timer.Reset(k.next(now))
	}
	return true
}

// stop ends the reports and reports whether the delivery had been given
// up. It is safe on nil and to call more than once.
func (k *keepAlive) stop() (hung bool) {
	if k == nil {
		return false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.stopped = true
	k.timer.Stop()
	return k.hung
}
