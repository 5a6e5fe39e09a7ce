package testutil

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
)

// defaultWait bounds how long the harness waits for a real transport to
// settle (see WithWaitTimeout). It is generous: a loaded CI machine, a
// Kafka group joining.
const defaultWait = 30 * time.Second

// tracker is what replaces the memory server's record and synchronous
// delivery when the harness runs on a real transport. It sees every
// publish and every delivery of the harness's brokers (as middleware) and
// every subscription they register (as an OutcomeObserver), and so knows
// how many deliveries each message published is owed: one per group, one
// per subscription without a group, among the subscriptions whose pattern
// matches its destination. The harness is settled when no publish and no
// delivery is running, no failed delivery waits for its outcome, and every
// subscription had at least the deliveries it is owed (retried deliveries
// do not count; dead-lettered and dropped ones do).
//
// Its publish and consume wrappers are the outermost of the chain, so a
// settled harness has ended every send and process span as well.
type tracker struct {
	tb            testing.TB
	system        string // "nats" or "kafka": how patterns match destinations
	wait          time.Duration
	waitOnPublish bool // publishes outside handlers wait until settled
	raise         bool // and return the final failures of the handlers meanwhile

	mu         sync.Mutex
	changed    chan struct{} // closed and replaced on every change
	subs       map[subKey]*trackedSub
	order      []*trackedSub
	publishing int // publishes running
	consuming  int // deliveries running
	awaiting   int // failed deliveries whose outcome is not known yet
	published  []recorded
	failures   []error // final handler failures, in outcome order
}

type subKey struct{ pattern, group string }

// trackedSub is every subscription of the harness with one pattern and
// group: the members of a group share its deliveries, subscriptions
// without a group each get every message.
type trackedSub struct {
	key      subKey
	tokens   []string // the pattern's tokens, templates' {params} as *
	members  int
	owed     int // deliveries owed for the messages published since it was registered
	received int // messages handled for good (success, dead letter, drop)
}

// recorded is a message published through the harness.
type recorded struct {
	msg    *broker.Message
	failed bool // the transport refused it
}

// inHandlerKey marks the ctx of a delivery, so that a publish made with it
// (an onward publish) does not wait for the harness to settle: it would
// wait for itself.
type inHandlerKey struct{}

func newTracker(tb testing.TB, system string, wait time.Duration, waitOnPublish, raise bool) *tracker {
	return &tracker{tb: tb, system: system, wait: wait, waitOnPublish: waitOnPublish, raise: raise,
		changed: make(chan struct{}), subs: map[subKey]*trackedSub{}}
}

// signal wakes the waiters; k.mu is held.
func (k *tracker) signal() {
	close(k.changed)
	k.changed = make(chan struct{})
}

// WrapPublish counts the publish while it runs and, in synchronous mode,
// waits until the harness settled after a publish made outside handlers.
// A request's round trip passes the chain too, around the publish of the
// request: it is left alone, as the publish inside it counts and waits.
func (k *tracker) WrapPublish(next driver.PublishFunc) driver.PublishFunc {
	return func(ctx context.Context, op driver.Operation, msgs []*broker.Message) error {
		if op.Kind == driver.OpRequest {
			return next(ctx, op, msgs)
		}
		k.mu.Lock()
		// A publish while a delivery runs or waits for its outcome is
		// taken for an onward publish (or a dead letter) of that delivery.
		onward := ctx.Value(inHandlerKey{}) != nil || k.consuming > 0 || k.awaiting > 0
		k.publishing++
		mark := len(k.failures)
		k.mu.Unlock()
		err := next(ctx, op, msgs)
		k.mu.Lock()
		k.publishing--
		k.signal()
		k.mu.Unlock()
		if onward || !k.waitOnPublish {
			return err
		}
		if serr := k.settle(); serr != nil {
			k.tb.Errorf("%v", serr)
		}
		if !k.raise {
			return err
		}
		k.mu.Lock()
		herr := errors.Join(k.failures[mark:]...)
		k.mu.Unlock()
		if err == nil {
			return herr
		}
		if herr == nil {
			return err
		}
		return errors.Join(err, herr)
	}
}

// WrapConsume counts the delivery while it runs and, when it succeeded,
// the messages as handled; a failure waits for its outcome.
func (k *tracker) WrapConsume(next driver.ConsumeFunc) driver.ConsumeFunc {
	return func(ctx context.Context, op driver.Operation, msgs []*broker.Message) error {
		k.mu.Lock()
		k.consuming++
		k.mu.Unlock()
		err := next(context.WithValue(ctx, inHandlerKey{}, true), op, msgs)
		k.mu.Lock()
		k.consuming--
		if err == nil {
			k.handled(op, len(msgs))
		} else {
			k.awaiting++
		}
		k.signal()
		k.mu.Unlock()
		return err
	}
}

// ObserveOutcomes implements driver.OutcomeObserver: it registers the
// subscription, and settles the failed deliveries with their outcome.
func (k *tracker) ObserveOutcomes(op driver.Operation) driver.OutcomeFunc {
	k.mu.Lock()
	key := subKey{op.Destination, op.Group}
	s := k.subs[key]
	if s == nil {
		s = &trackedSub{key: key, tokens: patternTokens(op.Destination)}
		k.subs[key] = s
		k.order = append(k.order, s)
	}
	s.members++
	k.signal()
	k.mu.Unlock()
	return func(_ context.Context, o driver.Outcome) {
		var final string
		switch o.Kind {
		case driver.OutcomeRetried:
		case driver.OutcomeDeadLettered:
			final = "message dead-lettered"
		case driver.OutcomeDropped:
			final = "message dropped"
		default:
			return
		}
		k.mu.Lock()
		defer k.mu.Unlock()
		if k.awaiting > 0 {
			k.awaiting--
		}
		if final != "" {
			k.handled(op, o.Messages)
			k.failures = append(k.failures, handlerFailure(op, o.Err, final))
		}
		k.signal()
	}
}

// handled counts n messages of op's subscription as handled for good;
// k.mu is held.
func (k *tracker) handled(op driver.Operation, n int) {
	if s := k.subs[subKey{op.Destination, op.Group}]; s != nil {
		s.received += n
	}
}

// recordPublish records what is published, with the headers the telemetry
// middleware (outside it) wrote, and what each message is owed; a message
// the transport refused is marked so and owed nothing.
func (k *tracker) recordPublish(next driver.PublishFunc) driver.PublishFunc {
	return func(ctx context.Context, op driver.Operation, msgs []*broker.Message) error {
		if op.Kind == driver.OpRequest {
			return next(ctx, op, msgs) // the publish inside records it
		}
		k.mu.Lock()
		first := len(k.published)
		for _, m := range msgs {
			k.published = append(k.published, recorded{msg: m.Clone()})
			k.owe(m.Destination, 1)
		}
		k.mu.Unlock()
		err := next(ctx, op, msgs)
		if err == nil {
			return nil
		}
		var be broker.BatchError
		partial := errors.As(err, &be) && len(be) == len(msgs)
		k.mu.Lock()
		for i, m := range msgs {
			if !partial || be[i] != nil {
				k.published[first+i].failed = true
				k.owe(m.Destination, -1)
			}
		}
		k.signal()
		k.mu.Unlock()
		return err
	}
}

// owe adds d deliveries of a message to destination to every
// subscription that matches it; k.mu is held.
func (k *tracker) owe(destination string, d int) {
	var tokens []string
	for _, s := range k.order {
		if k.system == "kafka" {
			if s.key.pattern != destination {
				continue
			}
		} else {
			if tokens == nil {
				tokens = strings.Split(destination, ".")
			}
			if !matchTokens(s.tokens, tokens) {
				continue
			}
		}
		if s.key.group != "" {
			s.owed += d
		} else {
			s.owed += d * s.members
		}
	}
}

// settledLocked reports whether the harness has settled; k.mu is held.
func (k *tracker) settledLocked() bool {
	if k.publishing > 0 || k.consuming > 0 || k.awaiting > 0 {
		return false
	}
	for _, s := range k.order {
		if s.received < s.owed {
			return false
		}
	}
	return true
}

// pendingLocked says what the harness still waits for; k.mu is held.
func (k *tracker) pendingLocked() string {
	var parts []string
	if k.publishing > 0 {
		parts = append(parts, fmt.Sprintf("%d publish(es) running", k.publishing))
	}
	if k.consuming > 0 {
		parts = append(parts, fmt.Sprintf("%d delivery(ies) running", k.consuming))
	}
	if k.awaiting > 0 {
		parts = append(parts, fmt.Sprintf("%d failed delivery(ies) without an outcome", k.awaiting))
	}
	for _, s := range k.order {
		if s.received < s.owed {
			where := s.key.pattern
			if s.key.group != "" {
				where += " (group " + s.key.group + ")"
			}
			parts = append(parts, fmt.Sprintf("%s handled %d of %d message(s)", where, s.received, s.owed))
		}
	}
	return strings.Join(parts, "; ")
}

// settle waits until the harness settled, at most k.wait.
func (k *tracker) settle() error {
	timer := time.NewTimer(k.wait)
	defer timer.Stop()
	for {
		k.mu.Lock()
		if k.settledLocked() {
			k.mu.Unlock()
			return nil
		}
		ch := k.changed
		k.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			k.mu.Lock()
			defer k.mu.Unlock()
			return fmt.Errorf("testutil: the harness did not settle within %v: %s", k.wait, k.pendingLocked())
		}
	}
}

// settled waits as settle does and fails the test when it times out.
func (k *tracker) settled() {
	if err := k.settle(); err != nil {
		k.tb.Errorf("%v", err)
	}
}

// publishedTo returns copies of the messages published to destination, or
// to any destination when all.
func (k *tracker) publishedTo(destination string, all bool) []*broker.Message {
	k.settled()
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []*broker.Message
	for _, r := range k.published {
		if !r.failed && (all || r.msg.Destination == destination) {
			out = append(out, r.msg.Clone())
		}
	}
	return out
}

// patternTokens splits a subscription pattern into subject tokens, a
// template's {param} counting as a *.
func patternTokens(pattern string) []string {
	tokens := strings.Split(pattern, ".")
	for i, t := range tokens {
		if strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}") {
			tokens[i] = "*"
		}
	}
	return tokens
}

// matchTokens reports whether the subject tokens match the pattern, as
// NATS matches them: * one token, > one or more at the end.
func matchTokens(pattern, subject []string) bool {
	for i, p := range pattern {
		if p == ">" {
			return len(subject) > i
		}
		if i >= len(subject) || p != "*" && p != subject[i] {
			return false
		}
	}
	return len(pattern) == len(subject)
}
