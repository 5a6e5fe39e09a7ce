package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
)

var _ driver.Puller = (*Transport)(nil)

// Pull implements driver.Puller. On a JetStream subject it opens a pull
// consumer (durable when spec.Name or spec.Group is given, as for
// Subscribe) and each next is one pull request for one message
// (jetstream's Next): what nobody asks for stays in the stream, a Nak
// makes the server redeliver the message after its delay, and a message
// taken by a request whose caller gave up meanwhile comes back after the
// consumer's AckWait.
//
// On a core NATS subject it opens a synchronous subscription (a queue
// subscription with spec.Group) and next takes its next message. Core NATS
// keeps no messages: only what is published after Pull returned is there
// to take, it waits in the client's buffer (up to nats.go's pending
// limits, then the server drops it as for a slow consumer), and a Nak
// keeps the message in that buffer to be taken again after its delay.
func (t *Transport) Pull(ctx context.Context, spec driver.SubscriptionSpec) (driver.Subscription, func(context.Context) (*broker.Message, driver.Acknowledger, error), error) {
	if err := t.usable(); err != nil {
		return nil, nil, fmt.Errorf("natsbroker: pull from %s: transport closed: %w", spec.Destination, err)
	}
	sc, err := t.subscription(&spec)
	if err != nil {
		return nil, nil, err
	}
	if spec.Batch {
		return nil, nil, fmt.Errorf("natsbroker: pull from %s: a batch spec: %w", spec.Destination, broker.ErrInvalid)
	}
	if sc.watch() {
		return nil, nil, errPullWatch(spec.Destination)
	}
	if sc.isCore(t, spec.Destination) {
		s, err := t.pullCore(ctx, spec, &sc)
		if err != nil {
			return nil, nil, err
		}
		ts, err := t.track(ctx, s, spec.Destination)
		if err != nil {
			return nil, nil, err
		}
		return ts, s.next, nil
	}
	setupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultTimeout)
	defer cancel()
	cons, err := t.newJSConsumer(setupCtx, &spec, &sc)
	if err != nil {
		return nil, nil, err
	}
	if _, err := cons.open(setupCtx); err != nil {
		return nil, nil, err
	}
	s := &jsPull{t: t, spec: spec, cons: cons}
	ts, err := t.track(ctx, s, spec.Destination)
	if err != nil {
		return nil, nil, err
	}
	return ts, s.next, nil
}

// jsPull is a JetStream consumer pulled one message at a time.
type jsPull struct {
	t      *Transport
	spec   driver.SubscriptionSpec
	cons   *jsConsumer
	closed atomic.Bool
}

func (s *jsPull) next(ctx context.Context) (*broker.Message, driver.Acknowledger, error) {
	failures := 0
	for {
		if s.closed.Load() {
			return nil, nil, broker.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		m, err := s.cons.current().Next(jetstream.FetchContext(ctx))
		if err == nil {
			md, mdErr := m.Metadata()
			bm := new(broker.Message)
			fillJetStreamMessage(bm, m, md, mdErr, &s.spec)
			a := &jsAck{msgs: []jetstream.Msg{m}, pos: s.cons.pos}
			if mdErr == nil {
				s.cons.pos.received(md.Sequence.Stream)
				a.seqs = []uint64{md.Sequence.Stream}
			}
			return bm, a, nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, nil, cerr
		}
		if errors.Is(err, natsgo.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
			continue // the request expired on the server: ask again
		}
		if errors.Is(err, natsgo.ErrConnectionClosed) {
			return nil, nil, fmt.Errorf("natsbroker: pull from %s: %w: %w", s.spec.Destination, broker.ErrClosed, err)
		}
		failures++
		if failures%3 == 0 {
			rctx, cancel := context.WithTimeout(ctx, defaultTimeout)
			if s.cons.gone(rctx) {
				_, _ = s.cons.reopen(rctx)
			}
			cancel()
		}
		if failures >= 10 {
			return nil, nil, fmt.Errorf("natsbroker: pull from %s: %w", s.spec.Destination, err)
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(time.Duration(failures) * 50 * time.Millisecond):
		}
	}
}

// Close deletes the consumer if it was ephemeral. Messages taken and not
// settled come back after AckWait to a durable consumer.
func (s *jsPull) Close(ctx context.Context) error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	defer s.t.untrack(s)
	s.cons.stopListening()
	return s.cons.remove(ctx)
}

// corePull is a core NATS synchronous subscription pulled one message at a
// time. A Nak puts the message aside until its delay has passed; next
// takes such a message before new ones.
type corePull struct {
	t    *Transport
	spec driver.SubscriptionSpec
	sub  *natsgo.Subscription

	mu      sync.Mutex
	retries []coreRetry
	wake    map[*context.CancelFunc]struct{} // waits a due retry interrupts
	timers  map[*time.Timer]struct{}
	closed  bool
}

type coreRetry struct {
	m       *natsgo.Msg
	attempt int
}

func (t *Transport) pullCore(ctx context.Context, spec driver.SubscriptionSpec, sc *subConfig) (*corePull, error) {
	s := &corePull{t: t, spec: spec, wake: map[*context.CancelFunc]struct{}{}, timers: map[*time.Timer]struct{}{}}
	var err error
	if spec.Group != "" {
		s.sub, err = t.nc.QueueSubscribeSync(spec.Destination, spec.Group)
	} else {
		s.sub, err = t.nc.SubscribeSync(spec.Destination)
	}
	if err != nil {
		return nil, fmt.Errorf("natsbroker: pull from %s: %w", spec.Destination, err)
	}
	if sc.pendingSet {
		if err := s.sub.SetPendingLimits(sc.pendingMsgs, sc.pendingBytes); err != nil {
			_ = s.sub.Unsubscribe()
			return nil, fmt.Errorf("natsbroker: pull from %s: pending limits: %w", spec.Destination, err)
		}
	}
	// As for Subscribe: the server knows of the interest before Pull
	// returns.
	if err := flush(ctx, t.nc); err != nil {
		t.cfg.logger.Debug("natsbroker: flush after subscribe", "subject", spec.Destination, "error", err)
	}
	return s, nil
}

func (s *corePull) next(ctx context.Context) (*broker.Message, driver.Acknowledger, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, nil, broker.ErrClosed
		}
		if len(s.retries) > 0 {
			r := s.retries[0]
			s.retries = s.retries[1:]
			s.mu.Unlock()
			return s.message(r.m, r.attempt)
		}
		wctx, cancel := context.WithCancel(ctx)
		s.wake[&cancel] = struct{}{}
		s.mu.Unlock()
		m, err := s.sub.NextMsgWithContext(wctx)
		s.mu.Lock()
		delete(s.wake, &cancel)
		s.mu.Unlock()
		cancel()
		if err == nil {
			return s.message(m, 1)
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, nil, cerr
		}
		if wctx.Err() != nil {
			continue // a retry is due, or Close
		}
		if errors.Is(err, natsgo.ErrBadSubscription) || errors.Is(err, natsgo.ErrConnectionClosed) {
			return nil, nil, fmt.Errorf("natsbroker: pull from %s: %w: %w", s.spec.Destination, broker.ErrClosed, err)
		}
		return nil, nil, fmt.Errorf("natsbroker: pull from %s: %w", s.spec.Destination, err)
	}
}

func (s *corePull) message(m *natsgo.Msg, attempt int) (*broker.Message, driver.Acknowledger, error) {
	bm := new(broker.Message)
	coreMessage(bm, m, &s.spec, attempt)
	return bm, &corePullAck{s: s, m: m, attempt: attempt}, nil
}

// retry puts m aside for attempt after delay.
func (s *corePull) retry(m *natsgo.Msg, attempt int, delay time.Duration) {
	due := func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			return
		}
		s.retries = append(s.retries, coreRetry{m: m, attempt: attempt})
		for c := range s.wake {
			(*c)()
		}
	}
	if delay <= 0 {
		due()
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var timer *time.Timer
	timer = time.AfterFunc(delay, func() {
		s.mu.Lock()
		delete(s.timers, timer)
		s.mu.Unlock()
		due()
	})
	s.timers[timer] = struct{}{}
}

// Close unsubscribes. Core NATS keeps nothing: messages still in the
// client's buffer, or put aside for a retry, are lost with it, as for a
// Subscribe closed with messages in flight.
func (s *corePull) Close(context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for timer := range s.timers {
		timer.Stop()
	}
	clear(s.timers)
	s.retries = nil
	for c := range s.wake {
		(*c)()
	}
	s.mu.Unlock()
	defer s.t.untrack(s)
	if err := s.sub.Unsubscribe(); err != nil && !errors.Is(err, natsgo.ErrConnectionClosed) && !errors.Is(err, natsgo.ErrBadSubscription) {
		return fmt.Errorf("natsbroker: close subscription to %s: %w", s.spec.Destination, err)
	}
	return nil
}

// corePullAck settles a pulled core message: core NATS has no
// acknowledgements, so Ack and Term only record the outcome and Nak puts
// the message aside for a later next.
type corePullAck struct {
	s       *corePull
	m       *natsgo.Msg
	attempt int
}

func (a *corePullAck) Ack(context.Context) error  { return nil }
func (a *corePullAck) Term(context.Context) error { return nil }
func (a *corePullAck) Nak(_ context.Context, delay time.Duration) error {
	a.s.retry(a.m, a.attempt+1, delay)
	return nil
}
