package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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

// jsAck settles a JetStream delivery of one or more messages: ack, nak
// with a redelivery delay, or term. Settling ends the keep-alive.
type jsAck struct {
	msgs []jetstream.Msg
	seqs []uint64 // stream sequences of msgs, 0 when unknown
	pos  *position
	keep *keepAlive
}

func (a *jsAck) Ack(context.Context) error {
	a.keep.stop()
	return a.settle(a.each("ack", jetstream.Msg.Ack))
}

func (a *jsAck) Nak(_ context.Context, delay time.Duration) error {
	a.keep.stop()
	if delay <= 0 {
		return a.each("nak", jetstream.Msg.Nak)
	}
	return a.each("nak", func(m jetstream.Msg) error { return m.NakWithDelay(delay) })
}

func (a *jsAck) Term(context.Context) error {
	a.keep.stop()
	return a.settle(a.each("term", jetstream.Msg.Term))
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
type keepAlive struct {
	mu      sync.Mutex
	msgs    []jetstream.Msg
	every   time.Duration
	timer   *time.Timer
	stopped bool
}

// startKeepAlive starts reporting progress on msgs every interval.
func startKeepAlive(msgs []jetstream.Msg, every time.Duration) *keepAlive {
	k := &keepAlive{msgs: msgs, every: every}
	k.mu.Lock()
	k.timer = time.AfterFunc(every, k.fire)
	k.mu.Unlock()
	return k
}

func (k *keepAlive) fire() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return
	}
	for _, m := range k.msgs {
		// A failed in-progress report is not fatal: at worst the message
		// is redelivered after AckWait, which JetStream allows anyway.
		_ = m.InProgress()
	}
	k.timer.Reset(k.every)
}

// stop ends the reports; it is safe on nil and to call more than once.
func (k *keepAlive) stop() {
	if k == nil {
		return
	}
	k.mu.Lock()
	k.stopped = true
	k.timer.Stop()
	k.mu.Unlock()
}
