package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/internal/foreignopt"
)

// Broker runs handlers for messages that arrive through a Transport and
// publishes messages through it, with middleware around both.
//
// Register handlers with Subscribe and SubscribeBatch, then call Run (or
// Start and later Close), or give the broker to an App that runs it with
// others. Publish and PublishBatch work from the moment the
// broker is created until it is closed, including from handlers that are
// finishing during a graceful Close.
//
// A Broker is safe for concurrent use.
type Broker struct {
	transport driver.Transport
	cfg       config
	publish   driver.PublishFunc

	state atomic.Int32

	mu        sync.Mutex // guards memory only; never held across a transport call
	subs      []*subscription
	endpoints []driver.Endpoint
	published map[driver.Endpoint]struct{} // publisher endpoints, to add each once
	baseCtx   context.Context
	abort     context.CancelFunc

	requests requests // Request's reply inbox and pending requests

	closing          step  // Close
	draining         step  // stopSubscriptions
	closingTransport step  // closeTransport
	drainErr         error // guarded by mu
	closed           chan struct{}
	closeErr         error
}

const (
	stateNew int32 = iota
	stateStarting
	stateStarted
	stateClosing
	stateClosed
)

// defaultShutdownTimeout bounds the graceful drain that Run performs when its
// context is done.
const defaultShutdownTimeout = 30 * time.Second

// New returns a Broker over t. The broker owns t from now on and closes it
// in Close. When t implements LoggerSetter, it is given the broker's logger
// (it keeps a logger given to it directly).
func New(t driver.Transport, opts ...Option) *Broker {
	b := &Broker{
		transport:        t,
		cfg:              newConfig(opts),
		closed:           make(chan struct{}),
		closing:          newStep(),
		draining:         newStep(),
		closingTransport: newStep(),
	}
	if ls, ok := t.(driver.LoggerSetter); ok {
		ls.SetLogger(b.cfg.logger)
	}
	b.publish = withMessageIDs(chainPublish(b.cfg.middleware, func(ctx context.Context, _ driver.Operation, msgs []*Message) error {
		return b.transport.Publish(ctx, msgs)
	}))
	return b
}

// Transport returns the transport the broker was created with.
func (b *Broker) Transport() driver.Transport { return b.transport }

// Publish sends msg to msg.Destination through the broker's middleware.
// Middleware may add headers to msg (trace context, baggage). A msg
// without an ID gets a unique one (see Message.ID).
func (b *Broker) Publish(ctx context.Context, msg *Message) error {
	if msg == nil {
		return errNilMessage
	}
	if msg.Destination == "" {
		return errEmptyDestination
	}
	if b.state.Load() == stateClosed {
		return ErrClosed
	}
	op := b.publishOperation(msg.Destination, false)
	return b.publish(ctx, op, []*Message{msg})
}

// PublishBatch sends msgs in one operation through the broker's middleware.
// The messages may have different destinations. When some messages fail and
// others are sent, the error is a BatchError telling which ones failed.
func (b *Broker) PublishBatch(ctx context.Context, msgs []*Message) error {
	if len(msgs) == 0 {
		return errEmptyBatch
	}
	dest := ""
	for i, m := range msgs {
		if m == nil {
			return fmt.Errorf("message %d: %w", i, errNilMessage)
		}
		if m.Destination == "" {
			return fmt.Errorf("message %d: %w", i, errEmptyDestination)
		}
		if i == 0 {
			dest = m.Destination
		} else if m.Destination != dest {
			dest = ""
		}
	}
	if b.state.Load() == stateClosed {
		return ErrClosed
	}
	op := b.publishOperation(dest, true)
	return b.publish(ctx, op, msgs)
}

// publishFilled sends msgs, whose destinations a Publisher filled from
// template, as Publish (one message) or PublishBatch would, with the
// template in the operation for telemetry.
func (b *Broker) publishFilled(ctx context.Context, template string, msgs []*Message, batch bool) error {
	if b.state.Load() == stateClosed {
		return ErrClosed
	}
	dest := msgs[0].Destination
	for _, m := range msgs[1:] {
		if m.Destination != dest {
			dest = ""
			break
		}
	}
	op := b.publishOperation(dest, batch)
	op.Template = template
	return b.publish(ctx, op, msgs)
}

func (b *Broker) publishOperation(dest string, batch bool) driver.Operation {
	info := b.transport.Info()
	op := driver.Operation{
		Kind:          driver.OpPublish,
		System:        info.System,
		Destination:   dest,
		Batch:         batch,
		ClientID:      info.ClientID,
		ServerAddress: info.ServerAddress,
		ServerPort:    info.ServerPort,
	}
	if info.TemporaryPrefix != "" && dest != "" {
		op.Temporary = strings.HasPrefix(dest, info.TemporaryPrefix)
	}
	return op
}

// Subscribe registers h for the messages arriving at destination (a NATS
// subject or pattern, a Kafka topic). Each call of h gets one message; its
// result settles the message: nil acknowledges it, an error triggers the
// retry policy (MaxAttempts, RetryBackoff) and finally DeadLetter or a drop.
// A panic in h is recovered and treated as an error. h's ctx carries what
// middleware put there (the process span, the message's baggage) and is
// cancelled only when a shutdown deadline forces the broker to abort:
// publishing with it from inside h continues the message's trace.
//
// destination may be a template with subject parameters,
// "orders.{region}.created": the transport listens to orders.*.created and
// h reads each parameter with Param. A transport without subject wildcards
// (Kafka) refuses it with an error matching ErrInvalid. A transport option
// that makes the destination a pattern of the transport's own
// (kafkabroker.Pattern, a regular expression) keeps it as written, braces
// included.
//
// Subscriptions registered before Start begin with Start; after Start they
// begin at once.
func (b *Broker) Subscribe(destination string, h func(ctx context.Context, msg *Message) error, opts ...SubscribeOption) error {
	return b.routes().subscribe(destination, h, opts)
}

// SubscribeBatch registers h for batches of messages arriving at
// destination: up to BatchSize messages, delivered once that many arrived or
// BatchWait after the first. The batch is settled as a whole: nil
// acknowledges every message, an error applies the retry policy to all.
func (b *Broker) SubscribeBatch(destination string, h func(ctx context.Context, msgs []*Message) error, opts ...SubscribeOption) error {
	return b.routes().subscribeBatch(destination, h, opts)
}

// subConfig applies opts to a subscription of destination, with the
// broker's defaults.
func (b *Broker) subConfig(destination string, batch bool, opts []SubscribeOption) subConfig {
	cfg := newSubConfig(destination, batch, opts)
	if cfg.codec == nil {
		cfg.codec = b.cfg.codec
	}
	if !batch && cfg.batchOpt && cfg.err == nil {
		cfg.err = optionError("Batch needs a batch subscription")
	}
	if batch && cfg.filter != nil && cfg.err == nil {
		// A batch is settled as a whole: splitting it among handlers
		// would settle each part by another handler's result.
		cfg.err = optionError("Filter on the batch subscription to %s: a batch is settled as a whole, so a batch handler filters its messages itself", destination)
	}
	return cfg
}

func (b *Broker) add(cfg subConfig, h batchHandler) error {
	_, err := b.addSub(cfg, h)
	return err
}

// addSub registers a subscription and returns it.
func (b *Broker) addSub(cfg subConfig, h batchHandler) (*subscription, error) {
	if cfg.spec.Destination == "" {
		return nil, errEmptyDestination
	}
	if cfg.err != nil {
		return nil, cfg.err
	}
	var tmpl *destTemplate
	if !transportPattern(cfg.spec) {
		var err error
		if tmpl, err = parseTemplate(cfg.spec.Destination); err != nil {
			return nil, fmt.Errorf("tracebus: subscribe: %w", err)
		}
	}
	if tmpl != nil {
		cfg.template, cfg.spec.Destination = tmpl, tmpl.pattern
	}
	if err := checkDeadLetterLoop(&cfg); err != nil {
		return nil, err
	}
	if err := b.validate(cfg.spec); err != nil {
		if tmpl != nil {
			// A transport without subject wildcards (Kafka) refuses the
			// pattern: say why the user's destination became one.
			return nil, fmt.Errorf("tracebus: subscribe %q: a destination with parameters listens to the pattern %q, which needs subject wildcards: %w",
				tmpl.raw, tmpl.pattern, err)
		}
		return nil, err
	}
	s := newSubscription(b, cfg, h)
	// b.mu guards memory only: subscribing may take a round trip to a slow
	// server, and Close, Endpoints and the health and AsyncAPI handlers
	// must not wait behind it.
	b.mu.Lock()
	state, base := b.state.Load(), b.baseCtx
	if state == stateClosing || state == stateClosed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	// A filtered handler joins the subscription of its destination, group
	// and name: one consumer on the transport for all its handlers.
	target, err := b.joinTarget(&cfg)
	if err != nil {
		b.mu.Unlock()
		return nil, err
	}
	if target != nil {
		b.join(target, cfg, h)
		b.mu.Unlock()
		return target, nil
	}
	// Listed before it starts, so that a Close meanwhile closes it too.
	// While Start runs, Start starts it.
	b.subs = append(b.subs, s)
	if state != stateStarted {
		b.endpoints = append(b.endpoints, subscriberEndpoint(cfg))
		b.mu.Unlock()
		return s, nil
	}
	b.mu.Unlock()
	if err := s.start(base); err != nil {
		b.mu.Lock()
		b.subs = slices.DeleteFunc(b.subs, func(x *subscription) bool { return x == s })
		b.mu.Unlock()
		return nil, err
	}
	b.mu.Lock()
	b.endpoints = append(b.endpoints, subscriberEndpoint(cfg))
	b.mu.Unlock()
	return s, nil
}

func subscriberEndpoint(cfg subConfig) driver.Endpoint {
	e := cfg.endpoint
	e.Kind = driver.EndpointSubscriber
	e.Destination = cfg.spec.Destination
	if cfg.template != nil {
		e.Destination = cfg.template.raw
	}
	e.Pattern = transportPattern(cfg.spec)
	e.Group = cfg.spec.Group
	e.Name = cfg.spec.Name
	e.Batch = cfg.spec.Batch
	cfg.doc.fill(&e)
	return e
}

// transportPattern reports whether a transport option of spec makes its
// destination a pattern the transport matches itself (kafkabroker.Pattern,
// a regular expression), whose braces are not template parameters.
func transportPattern(spec driver.SubscriptionSpec) bool {
	for _, o := range spec.TransportOptions {
		if p, ok := o.(interface{ DestinationPattern() bool }); ok && p.DestinationPattern() {
			return true
		}
	}
	return false
}

// validate checks that every transport option is meant for this transport
// and lets the transport check the rest.
func (b *Broker) validate(spec driver.SubscriptionSpec) error {
	system := b.transport.Info().System
	for _, o := range spec.TransportOptions {
		if name := o.TransportName(); name != system && foreignopt.For(b.transport) == nil {
			// Only a memory transport of the test harness takes the
			// options of another transport (internal/foreignopt).
			return fmt.Errorf("tracebus: subscribe %s: option %s is a %s option, the broker's transport is %s: %w",
				spec.Destination, optionName(o), name, system, errors.ErrUnsupported)
		}
	}
	return b.transport.ValidateSubscription(spec) // it names the subscription and the option
}

// Start starts every registered subscription and returns. ctx carries
// values into handlers; cancelling it does not stop the broker: Close does.
// A span in ctx becomes the ambient context of every delivery (telemetry
// links each process span to it), so start the broker outside request or
// startup spans unless that is what you want.
// If a subscription fails to start, Start closes the ones it started and
// returns the error.
func (b *Broker) Start(ctx context.Context) error {
	b.mu.Lock()
	switch b.state.Load() {
	case stateStarting, stateStarted:
		b.mu.Unlock()
		return errAlreadyStarted
	case stateClosing, stateClosed:
		b.mu.Unlock()
		return ErrClosed
	}
	base, abort := context.WithCancel(context.WithoutCancel(ctx))
	b.baseCtx, b.abort = base, abort
	b.state.Store(stateStarting)
	b.mu.Unlock()

	// The subscriptions start outside b.mu, one at a time, including the
	// ones registered while Start runs; the broker is started once none
	// is left.
	for i := 0; ; i++ {
		b.mu.Lock()
		if b.state.Load() != stateStarting {
			// Close began: it closes what was started.
			b.mu.Unlock()
			return ErrClosed
		}
		if i == len(b.subs) {
			b.state.Store(stateStarted)
			b.mu.Unlock()
			return nil
		}
		s := b.subs[i]
		b.mu.Unlock()
		if err := s.start(base); err != nil {
			if b.state.Load() != stateStarting {
				return ErrClosed // Close drains and closes what was started
			}
			// Every listed one, not only those this loop started: a
			// Subscription.Start may have started one meanwhile.
			b.mu.Lock()
			subs := slices.Clone(b.subs)
			b.mu.Unlock()
			for _, st := range subs {
				_ = st.stop(ctx)
			}
			abort()
			b.mu.Lock()
			if b.state.Load() == stateStarting {
				b.state.Store(stateNew) // Start may be tried again
			}
			b.mu.Unlock()
			return err
		}
	}
}

// Run starts the broker if needed, blocks until ctx is done, then closes the
// broker gracefully, giving in-flight handlers up to 30 seconds to
// finish. It returns the error of Start or Close, or nil.
func (b *Broker) Run(ctx context.Context) error {
	if b.state.Load() == stateNew {
		if err := b.Start(ctx); err != nil {
			return err
		}
	}
	select {
	case <-ctx.Done():
	case <-b.closed:
		return b.closeErr
	}
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultShutdownTimeout)
	defer cancel()
	return b.Close(closeCtx)
}

// Close stops every subscription from taking new messages, waits for the
// handlers in flight to return and their messages to be settled, then
// closes the transport. When ctx is done before the drain completes, the
// handlers' context is cancelled, Close stops waiting and returns an error
// wrapping ctx.Err(); unsettled messages are redelivered where the system
// does that. Publishing fails with ErrClosed afterwards. Calling Close again
// waits for the first call and returns nil, or ctx.Err() when its own ctx
// is done first.
//
// A broker run by an App is closed by the App, in two steps that Close
// takes one after the other: see App.Stop.
func (b *Broker) Close(ctx context.Context) error {
	// A step, not a sync.Once: a later call must be able to give up on
	// its own ctx while the first one is still draining, and Once.Do would
	// block it until the first call returned.
	return b.closing.run(ctx, func() error {
		err := b.stopSubscriptions(ctx)
		return errors.Join(err, b.closeTransport(ctx))
	})
}

// stopSubscriptions is the first step of closing: every subscription stops
// taking new messages and the handlers in flight finish, within ctx. The
// broker keeps publishing, so handlers of other brokers still draining can
// send through it. When ctx is done first, the handlers' context is
// cancelled. A second call waits for the first one (or its own ctx) and
// returns nil.
func (b *Broker) stopSubscriptions(ctx context.Context) error {
	return b.draining.run(ctx, func() error {
		b.mu.Lock()
		b.state.Store(stateClosing)
		subs := slices.Clone(b.subs) // a failed Subscribe takes itself out of b.subs
		abort := b.abort
		b.mu.Unlock()

		errs := make([]error, len(subs))
		var wg sync.WaitGroup
		for i, s := range subs {
			wg.Go(func() { errs[i] = s.close(ctx) })
		}
		drained := make(chan struct{})
		go func() { wg.Wait(); close(drained) }()
		var err error
		select {
		case <-drained:
			err = errors.Join(errs...)
		case <-ctx.Done():
			err = fmt.Errorf("tracebus: close: drain did not finish: %w", ctx.Err())
		}
		if abort != nil {
			abort()
		}
		b.mu.Lock()
		b.drainErr = err
		b.mu.Unlock()
		return err
	})
}

// closeTransport is the second step of closing, after stopSubscriptions:
// publishing fails with ErrClosed from now on and the transport is closed.
// A second call waits for the first one (or its own ctx) and returns nil.
func (b *Broker) closeTransport(ctx context.Context) error {
	return b.closingTransport.run(ctx, func() error {
		b.mu.Lock()
		b.state.Store(stateClosed)
		drainErr := b.drainErr
		b.mu.Unlock()
		// Requests still waiting fail with ErrClosed; replies stop before
		// the transport closes under the inbox.
		err := b.requests.close(ctx)
		if terr := b.transport.Close(ctx); terr != nil {
			err = errors.Join(err, fmt.Errorf("tracebus: close transport: %w", terr))
		}
		// Run reports the whole close, drain included, to its caller.
		b.closeErr = errors.Join(drainErr, err)
		close(b.closed)
		return err
	})
}

// step runs a function once; a later caller waits for it to finish.
type step struct {
	begun atomic.Bool
	done  chan struct{}
}

func newStep() step { return step{done: make(chan struct{})} }

// run calls fn if it is the first call and returns fn's error. Otherwise it
// waits until the first call finished and returns nil, or ctx.Err() when
// ctx is done first.
func (s *step) run(ctx context.Context, fn func() error) error {
	if s.begun.CompareAndSwap(false, true) {
		defer close(s.done)
		return fn()
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
