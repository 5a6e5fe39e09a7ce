package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/tracebus/tracebus/broker/driver"
)

// Headers the broker adds to a message it sends to a dead-letter
// destination.
const (
	// HeaderDeadLetterError holds the text of the last handler error.
	HeaderDeadLetterError = "x-tracebus-error"
	// HeaderDeadLetterOrigin holds the destination the message failed at.
	HeaderDeadLetterOrigin = "x-tracebus-origin"
	// HeaderDeadLetterAttempts holds how many deliveries were made.
	HeaderDeadLetterAttempts = "x-tracebus-attempts"
)

// deadLetterIDSuffix is appended to a message's ID to form the ID of its
// dead-letter copy.
const deadLetterIDSuffix = ".dead-letter"

// maxDeadLetterErrorLen bounds the error text copied into a header.
const maxDeadLetterErrorLen = 1024

type subscription struct {
	b       *Broker
	cfg     subConfig
	op      driver.Operation
	settleO driver.Operation
	consume driver.ConsumeFunc
	settle  driver.SettleFunc
	out     *outcomes
	routes  atomic.Pointer[[]route] // the handlers; more join a filtered subscription
	// A Puller's subscription: the receive operation and its chain.
	recvO   driver.Operation
	receive driver.ConsumeFunc

	mu        sync.Mutex          // guards the fields below; never held across a transport call
	ts        driver.Subscription // the transport's subscription once started
	cancel    context.CancelFunc  // cancels the handlers' context of ts
	starting  chan struct{}       // closed when a start in progress returns
	stopping  chan struct{}       // closed when a stop in progress has closed ts
	closed    bool                // close was called: no start from now on
	abandoned bool                // a stop gave up waiting for the start in progress
	paused    bool                // Subscription.Stop stopped it on purpose: the broker does not start it
	down      error               // why the last Subscription.Start failed; nil once running or stopped
	pulls     *pullRun            // a Puller's consumer once started
}

func newSubscription(b *Broker, cfg subConfig, h batchHandler) *subscription {
	info := b.transport.Info()
	s := &subscription{b: b, cfg: cfg}
	s.routes.Store(&[]route{{filter: cfg.filter, h: h}})
	s.op = driver.Operation{
		Kind:          driver.OpConsume,
		System:        info.System,
		Destination:   cfg.spec.Destination,
		Group:         cfg.spec.Group,
		Batch:         cfg.spec.Batch,
		ClientID:      info.ClientID,
		ServerAddress: info.ServerAddress,
		ServerPort:    info.ServerPort,
	}
	if cfg.template != nil {
		// The template is the low-cardinality name of what the
		// subscription receives: telemetry names spans after it and
		// records it as messaging.destination.template.
		s.op.Destination = cfg.template.raw
	}
	if n, ok := b.transport.(driver.SubscriptionNamer); ok {
		s.op.Subscription = n.SubscriptionName(cfg.spec)
	}
	s.op.Pulled = cfg.pull
	s.settleO = s.op
	s.settleO.Kind = driver.OpSettle
	s.settleO.OperationName = info.AckOperation

	mws := append(append([]driver.Middleware(nil), b.cfg.middleware...), cfg.middleware...)
	s.out = newOutcomes(s.op, b.cfg.logger, mws)
	s.cfg.spec.MaxAttempts = cfg.maxAttempts
	s.cfg.spec.Events = s.out
	s.consume = chainConsume(mws, func(ctx context.Context, _ driver.Operation, msgs []*Message) (err error) {
		d := deliveryFrom(ctx)
		if d != nil {
			// Settlement made after the handler runs with the ctx the
			// middleware gave it, so settle spans are children of the
			// process span.
			d.handlerCtx = ctx
			if s.cfg.ackMode == ackFirst {
				if serr := d.settle(ctx, driver.Settlement{Action: driver.Ack}); serr != nil {
					s.logSettleError(ctx, driver.Ack, serr)
				}
			}
		}
		if s.cfg.template != nil {
			ctx = context.WithValue(ctx, paramsKey{}, paramSource{t: s.cfg.template, msgs: msgs})
		}
		s.logDelivered(ctx, "tracebus: received", msgs, nil)
		defer func() { s.logDelivered(ctx, "tracebus: processed", msgs, err) }()
		defer func() { err = s.b.cfg.redact(err) }() // after the recover below
		defer func() {
			if r := recover(); r != nil {
				err = &PanicError{Value: r, Stack: debug.Stack()}
			}
		}()
		return s.dispatch(ctx, msgs)
	})
	if cfg.pull {
		s.recvO = s.op
		s.recvO.Kind, s.recvO.Pulled = driver.OpReceive, false
		s.recvO.OperationName = info.ReceiveOperation
		s.receive = chainConsume(mws, passReceive)
	}
	s.settle = chainSettle(mws, func(ctx context.Context, _ driver.Operation, _ []*Message, st driver.Settlement) error {
		d, _ := ctx.Value(settlingKey{}).(*delivery)
		if d == nil {
			return errNoDelivery
		}
		return d.apply(ctx, st)
	})
	return s
}

// errNoDelivery: a settle middleware passed the Settlement on with a ctx
// that does not derive from the one it was given; the delivery settles it
// directly.
var errNoDelivery = errors.New("tracebus: settlement without its delivery")

// start subscribes through the transport, without holding s.mu across the
// call: a slow server must not hold up Close. It fails with ErrClosed once
// close was called.
func (s *subscription) start(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.paused || s.ts != nil || s.starting != nil {
		s.mu.Unlock()
		return nil
	}
	starting := make(chan struct{})
	s.starting = starting
	s.abandoned = false
	s.mu.Unlock()

	// The handlers of this start get a context of their own, so that a
	// Subscription.Stop that gives up on them cancels them and no others.
	ctx, cancel := context.WithCancel(ctx)
	kept := false // cancel goes with ts, to the stop that closes it
	defer func() {
		if !kept {
			cancel()
		}
	}()
	var (
		ts   driver.Subscription
		next func(context.Context) (*Message, driver.Acknowledger, error)
		err  error
	)
	if s.cfg.pull {
		ts, next, err = s.b.transport.(driver.Puller).Pull(ctx, s.cfg.spec)
	} else {
		ts, err = s.b.transport.Subscribe(ctx, s.cfg.spec, s.deliver)
	}

	s.mu.Lock()
	s.starting = nil
	abandoned := s.abandoned
	if err == nil && !abandoned {
		s.ts, s.cancel, kept = ts, cancel, true
		if next != nil {
			s.pulls = newPullRun(next)
		}
	}
	closed := s.closed
	s.mu.Unlock()
	close(starting)
	if err != nil {
		return err
	}
	if abandoned {
		// close gave up waiting for this start (its ctx ended), so the
		// subscription is closed here. ctx is the broker's delivery
		// context, which Close cancels when it gives up: this close does
		// not wait long for handlers.
		_ = ts.Close(ctx)
	}
	if closed {
		return ErrClosed
	}
	return nil
}

// close stops the subscription for good: a start in progress is waited
// for (within ctx) and the transport's subscription is closed; a later
// start fails with ErrClosed.
func (s *subscription) close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return s.stop(ctx)
}

// stop closes the transport's subscription, if any, after waiting for a
// start in progress. Without close, the subscription can be started again
// (a failed Broker.Start undoes itself with stop).
func (s *subscription) stop(ctx context.Context) error {
	s.mu.Lock()
	starting := s.starting
	s.mu.Unlock()
	if starting != nil {
		select {
		case <-starting:
		case <-ctx.Done():
			s.mu.Lock()
			if s.starting == starting {
				// The start closes what it subscribed once it returns.
				s.abandoned = true
				s.mu.Unlock()
				return fmt.Errorf("tracebus: close subscription to %s: subscribe still in progress: %w",
					s.cfg.spec.Destination, ctx.Err())
			}
			s.mu.Unlock()
		}
	}
	s.mu.Lock()
	ts, cancel, stopping, pulls := s.ts, s.cancel, s.stopping, s.pulls
	s.ts, s.cancel, s.pulls = nil, nil, nil
	if ts != nil {
		stopping = make(chan struct{})
		s.stopping = stopping
	}
	s.mu.Unlock()
	if ts == nil {
		if stopping == nil {
			return nil
		}
		// Another stop is draining the handlers: this one returns when
		// they have finished too.
		select {
		case <-stopping:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("tracebus: stop subscription to %s: drain did not finish: %w",
				s.cfg.spec.Destination, ctx.Err())
		}
	}
	defer func() {
		s.mu.Lock()
		s.stopping = nil
		s.mu.Unlock()
		close(stopping)
	}()
	defer s.out.flush() // drops reported while closing are logged now
	if pulls != nil {
		// Gets waiting for a message give up; those running a handler
		// finish and settle before the consumer closes under them.
		if err := pulls.drain(ctx); err != nil {
			_ = ts.Close(ctx)
			cancel()
			return fmt.Errorf("tracebus: stop subscription to %s: %w", s.cfg.spec.Destination, err)
		}
	}
	err := ts.Close(ctx)
	// The handlers have returned, or ctx ended first and the ones still
	// running are told to give up, as Broker.Close does.
	cancel()
	return err
}

// deliver is the DeliverFunc given to the transport: it runs the middleware
// chain and the handler, decides the outcome and settles the delivery,
// unless the handler settled it already (ack first, manual settlement).
func (s *subscription) deliver(ctx context.Context, msgs []*Message, ack driver.Acknowledger) {
	s.deliverWith(ctx, msgs, ack, nil)
}

// deliverWith is deliver for a delivery whose handler is handle (a
// Puller's Get) rather than the subscription's, when handle is not nil. It
// returns the handler's error.
func (s *subscription) deliverWith(ctx context.Context, msgs []*Message, ack driver.Acknowledger, handle func(context.Context, *Message) error) error {
	d := &delivery{s: s, msgs: msgs, ack: ack, handlerCtx: ctx, handle: handle}
	err := s.run(context.WithValue(ctx, deliveryKey{}, d), msgs)
	if d.settled.Load() {
		if err != nil {
			s.b.cfg.logger.LogAttrs(d.handlerCtx, slog.LevelError, "tracebus: handler failed after its message was settled; not redelivered",
				slog.String("destination", s.op.Destination),
				slog.Int("messages", len(msgs)),
				slog.String("error", s.b.cfg.errText(err)))
		}
		return err
	}
	herr := err
	if s.cfg.ackMode == ackFirst {
		// A middleware returned before the handler ran: at most once
		// still means the message is not delivered again.
		err = nil
	}
	st := s.decide(ctx, d.handlerCtx, msgs, err)
	if err == nil && s.cfg.ackMode == ackManual {
		// Manual settlement: a message the handler did not acknowledge
		// was not processed, so it is delivered again, as a server
		// would after its ack wait.
		st = driver.Settlement{Action: driver.Nak, Delay: s.cfg.backoff(deliveryAttempt(msgs))}
		s.b.cfg.logger.LogAttrs(d.handlerCtx, slog.LevelWarn, "tracebus: handler returned without settling a manual-ack delivery; delivering again",
			slog.String("destination", s.op.Destination),
			slog.Duration("delay", st.Delay))
	}
	if serr := d.settle(d.handlerCtx, st); serr != nil {
		s.logSettleError(ctx, st.Action, serr)
	}
	return herr
}

func (s *subscription) logSettleError(ctx context.Context, a driver.SettleAction, err error) {
	s.b.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "tracebus: settle failed",
		slog.String("destination", s.op.Destination),
		slog.String("action", a.String()),
		slog.String("error", s.b.cfg.errText(err)))
}

// run calls the consume chain, turning a panic in middleware into an error
// as well: one bad delivery must never stop the subscription.
func (s *subscription) run(ctx context.Context, msgs []*Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return s.consume(ctx, s.op, msgs)
}

func (s *subscription) decide(ctx, handlerCtx context.Context, msgs []*Message, err error) driver.Settlement {
	if err == nil {
		return driver.Settlement{Action: driver.Ack}
	}
	log := s.failureLogger(msgs)
	attempt := deliveryAttempt(msgs)
	// A forced shutdown cancelled the handler: the failure says nothing
	// about the message, so hand it back without using up an attempt.
	if ctx.Err() != nil {
		return driver.Settlement{Action: driver.Nak}
	}
	if !errors.Is(err, ErrPermanent) && attempt < s.cfg.maxAttempts {
		delay := s.cfg.backoff(attempt)
		if d, ok := retryDelay(err); ok {
			delay = d
		}
		log.LogAttrs(handlerCtx, slog.LevelWarn, "tracebus: handler failed, will retry",
			slog.String("destination", s.op.Destination),
			slog.Int("attempt", attempt),
			slog.Duration("delay", delay),
			slog.String("error", s.b.cfg.errText(err)))
		s.out.record(handlerCtx, driver.OutcomeRetried, msgs, err)
		return driver.Settlement{Action: driver.Nak, Delay: delay}
	}
	if _, ok := errors.AsType[*unmatchedError](err); ok && s.cfg.deadLetter == "" {
		// Not a failure of a handler: the subscription has none for
		// this message (see Filter).
		log.LogAttrs(handlerCtx, slog.LevelWarn, "tracebus: no handler takes the message, dropping it",
			slog.String("destination", s.op.Destination),
			slog.Int("messages", len(msgs)),
			slog.String("error", s.b.cfg.errText(err)))
		s.out.record(handlerCtx, driver.OutcomeDropped, msgs, err)
		return driver.Settlement{Action: driver.Term}
	}
	if s.cfg.deadLetter == "" {
		log.LogAttrs(handlerCtx, slog.LevelError, "tracebus: handler failed, dropping message",
			slog.String("destination", s.op.Destination),
			slog.Int("attempt", attempt),
			slog.Int("messages", len(msgs)),
			slog.String("error", s.b.cfg.errText(err)))
		s.out.record(handlerCtx, driver.OutcomeDropped, msgs, err)
		return driver.Settlement{Action: driver.Term}
	}
	if derr := s.deadLetter(handlerCtx, msgs, err, attempt); derr != nil {
		// Never lose a message because the dead-letter destination is
		// unavailable: leave it to be delivered again.
		delay := s.cfg.backoff(attempt)
		log.LogAttrs(handlerCtx, slog.LevelError, "tracebus: dead-letter publish failed, will retry",
			slog.String("destination", s.op.Destination),
			slog.String("dead_letter", s.cfg.deadLetter),
			slog.Any("error", derr))
		s.out.record(handlerCtx, driver.OutcomeRetried, msgs, err)
		return driver.Settlement{Action: driver.Nak, Delay: delay}
	}
	log.LogAttrs(handlerCtx, slog.LevelWarn, "tracebus: handler failed, message dead-lettered",
		slog.String("destination", s.op.Destination),
		slog.String("dead_letter", s.cfg.deadLetter),
		slog.Int("attempt", attempt),
		slog.String("error", s.b.cfg.errText(err)))
	s.out.record(handlerCtx, driver.OutcomeDeadLettered, msgs, err)
	return driver.Settlement{Action: driver.Ack}
}

// deliveryAttempt is the 1-based attempt a delivery is: the highest
// delivery count among its messages.
func deliveryAttempt(msgs []*Message) int {
	attempt := 1
	for _, m := range msgs {
		attempt = max(attempt, m.Delivery.DeliveryCount)
	}
	return attempt
}

func (s *subscription) deadLetter(ctx context.Context, msgs []*Message, cause error, attempt int) error {
	out := make([]*Message, len(msgs))
	for i, m := range msgs {
		out[i] = deadLetterCopy(m, s.cfg.deadLetter, s.b.cfg.errText(cause), attempt)
	}
	if len(out) == 1 {
		return s.b.Publish(ctx, out[0])
	}
	return s.b.PublishBatch(ctx, out)
}

// deadLetterCopy is the message sent to dest for m, which failed with cause
// on its attempt-th delivery; text is the error as WithErrorText says.
func deadLetterCopy(m *Message, dest, text string, attempt int) *Message {
	if len(text) > maxDeadLetterErrorLen {
		text = text[:maxDeadLetterErrorLen]
	}
	c := &Message{
		Destination: dest,
		Key:         m.Key,
		Body:        m.Body,
		Headers:     m.Headers.Clone(),
	}
	// A new id: reusing the original one would make a broker that
	// de-duplicates by id (JetStream, when the dead-letter subject is in
	// the same stream) drop the copy while acknowledging it, and the
	// message would be lost. Derived, so a retried dead-letter publish is
	// still de-duplicated.
	if m.ID != "" {
		c.ID = m.ID + deadLetterIDSuffix
	}
	c.Headers.Set(HeaderDeadLetterError, text)
	c.Headers.Set(HeaderDeadLetterOrigin, m.Destination)
	c.Headers.Set(HeaderDeadLetterAttempts, strconv.Itoa(attempt))
	return c
}
