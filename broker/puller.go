package broker

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"runtime/debug"
	"sync"
	"time"

	"github.com/tracebus/tracebus/broker/driver"
)

// Puller takes messages of one destination on demand, one at a time, when
// the caller asks: a command-line tool, a batch job, a drain loop
// (FastStream's subscriber.get_one and async for). A message nobody asked
// for stays on the server: the transport pulls (a JetStream pull consumer,
// a core NATS synchronous subscription, a Kafka reader, the memory
// transport's queue).
//
// A Puller's consumer opens when the broker starts, or at the first Get or
// All when the broker was not started, so a Puller works with or without
// Start. Core NATS keeps no messages for a subject nobody subscribes to:
// only what is published after the consumer opened can be taken. A Kafka
// puller with a Group, and a JetStream one with a Name, resume at their
// committed position.
//
// b.Subscription(destination).Stop stops it (a Get waiting returns an error
// matching ErrClosed, a Get running its handler finishes first) and Start
// opens it again; Broker.Close closes it.
//
// A Puller is safe for concurrent use: concurrent Gets take different
// messages.
type Puller[T any] struct {
	s   *subscription
	dec *decoder[T]
}

// NewPuller registers an on-demand consumer of destination: nothing is
// taken until Get or All asks. Subscribe options apply as for Handle (Name
// or Group for a durable consumer or consumer group, MaxAttempts,
// DeadLetter, ManualAck, AckFirst, codecs, Use, transport options); batch
// options are refused. It is listed by Endpoints (and in an AsyncAPI
// document) as a subscriber. A transport that cannot pull gives an error
// matching errors.ErrUnsupported.
func NewPuller[T any](r Registrar, destination string, opts ...SubscribeOption) (*Puller[T], error) {
	rt := r.routes()
	b, cfg := rt.b, rt.subConfig(destination, false, opts)
	if _, ok := b.transport.(driver.Puller); !ok {
		return nil, fmt.Errorf("tracebus: pull from %s: the %s transport cannot take messages on demand: %w",
			cfg.spec.Destination, b.transport.Info().System, errors.ErrUnsupported)
	}
	dec, err := newDecoder[T](b, &cfg)
	if err != nil {
		return nil, err
	}
	cfg.pull, cfg.spec.Pull = true, true
	s, err := b.addSub(cfg, func(ctx context.Context, msgs []*Message) error {
		d := deliveryFrom(ctx)
		if d == nil || d.handle == nil {
			return fmt.Errorf("tracebus: pull from %s: delivery without its Get: %w", destination, ErrPermanent)
		}
		return d.handle(ctx, msgs[0])
	})
	if err != nil {
		return nil, err
	}
	return &Puller[T]{s: s, dec: dec}, nil
}

// Get waits for one message, or for ctx's end (then it returns an error
// matching ctx.Err()), decodes it into T and runs h on it as a subscription
// runs a handler: nil acknowledges it (JetStream ack, Kafka commit); an
// error hands it back for redelivery to a later Get (a nak) until
// MaxAttempts, then it is dead-lettered or dropped; a message that does
// not decode or validate is dead-lettered or dropped at once, without
// calling h; with ManualAck, h settles through SettlerFromContext; a panic
// in h is recovered as a *PanicError. h's ctx derives from ctx and carries
// the message (MessageFromContext), its baggage and the trace. Get returns
// h's error, or the decoding error. On a stopped or closed subscription it
// returns an error matching ErrClosed.
func (p *Puller[T]) Get(ctx context.Context, h func(ctx context.Context, v T) error) error {
	if h == nil {
		return errNilHandler
	}
	return p.s.get(ctx, func(ctx context.Context, m *Message) error {
		v, err := p.dec.decode(m)
		if err != nil {
			return err
		}
		return h(ctx, v)
	})
}

// All iterates over values taken on demand, as Get takes them, until ctx
// ends; then the loop ends without an error. Each value is acknowledged
// when the loop body returns (at the next iteration, or at a break); a
// value that does not decode is yielded as (zero, err) and dead-lettered or
// dropped. Other errors (a stopped subscription, a transport failure) are
// yielded too; the loop ends after one matching ErrClosed. A panic in the
// loop body hands the message back for redelivery and goes on up.
func (p *Puller[T]) All(ctx context.Context) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for {
			var (
				stop     bool
				yielded  bool
				panicked any
			)
			err := p.s.get(ctx, func(_ context.Context, m *Message) (err error) {
				defer func() {
					if r := recover(); r != nil {
						panicked = r
						err = fmt.Errorf("tracebus: pull from %s: loop body panicked: %v", p.s.cfg.spec.Destination, r)
					}
				}()
				v, err := p.dec.decode(m)
				yielded = true
				stop = !yield(v, err)
				return err
			})
			if panicked != nil {
				panic(panicked)
			}
			if stop {
				return
			}
			if err == nil || yielded {
				continue
			}
			if ctx.Err() != nil {
				return
			}
			var zero T
			if !yield(zero, err) || errors.Is(err, ErrClosed) {
				return
			}
		}
	}
}

// pullRun is one opening of a Puller's consumer: the transport's next
// function and the Gets using it, which a stop drains.
type pullRun struct {
	next   func(context.Context) (*Message, driver.Acknowledger, error)
	ctx    context.Context // cancelled when the stop begins: waiting Gets give up
	cancel context.CancelFunc
	gets   sync.WaitGroup
}

func newPullRun(next func(context.Context) (*Message, driver.Acknowledger, error)) *pullRun {
	ctx, cancel := context.WithCancel(context.Background())
	return &pullRun{next: next, ctx: ctx, cancel: cancel}
}

// drain stops the Gets waiting for a message and waits, within ctx, for
// those running a handler.
func (r *pullRun) drain(ctx context.Context) error {
	r.cancel()
	done := make(chan struct{})
	go func() { r.gets.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("drain did not finish: %w", ctx.Err())
	}
}

// errStopped is returned by a Get on a stopped or closed Puller.
func (s *subscription) errStopped() error {
	return fmt.Errorf("tracebus: pull from %s: subscription stopped: %w", s.cfg.spec.Destination, ErrClosed)
}

// acquire returns the running consumer, opening it when the broker was not
// started, with a Get registered on it.
func (s *subscription) acquire(ctx context.Context) (*pullRun, error) {
	for range 2 {
		s.mu.Lock()
		if s.closed || s.paused {
			s.mu.Unlock()
			return nil, s.errStopped()
		}
		if r := s.pulls; r != nil {
			r.gets.Add(1)
			s.mu.Unlock()
			return r, nil
		}
		starting := s.starting
		s.mu.Unlock()
		if starting != nil {
			select {
			case <-starting:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		s.b.mu.Lock()
		base := s.b.baseCtx
		s.b.mu.Unlock()
		if base == nil {
			// Not started: the consumer lives until Stop or Close, not
			// until this Get's ctx ends.
			base = context.WithoutCancel(ctx)
		}
		if err := s.start(base); err != nil {
			if errors.Is(err, ErrClosed) {
				return nil, s.errStopped()
			}
			return nil, fmt.Errorf("tracebus: pull from %s: %w", s.cfg.spec.Destination, err)
		}
	}
	return nil, s.errStopped()
}

// get takes one message and runs handle on it.
func (s *subscription) get(ctx context.Context, handle func(context.Context, *Message) error) error {
	r, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer r.gets.Done()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(r.ctx, cancel)()

	start := time.Now()
	m, ack, err := r.next(wctx)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("tracebus: pull from %s: %w", s.cfg.spec.Destination, cerr)
		}
		if r.ctx.Err() != nil || errors.Is(err, ErrClosed) {
			return s.errStopped()
		}
		// The transport failed: telemetry sees a receive of nothing.
		op := s.recvO
		op.Start = start
		rc := &receiveCall{err: err}
		if rerr := s.runReceive(context.WithValue(ctx, receiveKey{}, rc), op, nil); rerr != nil {
			return fmt.Errorf("tracebus: pull from %s: %w", s.cfg.spec.Destination, rerr)
		}
		return fmt.Errorf("tracebus: pull from %s: %w", s.cfg.spec.Destination, err)
	}
	op := s.recvO
	op.Start = start
	msgs := []*Message{m}
	rc := &receiveCall{}
	if rerr := s.runReceive(context.WithValue(ctx, receiveKey{}, rc), op, msgs); rerr != nil {
		s.b.cfg.logger.WarnContext(ctx, "tracebus: receive middleware failed; processing the message",
			"destination", s.op.Destination, "error", s.b.cfg.errText(rerr))
	}
	hctx := ctx
	if rc.ctx != nil {
		// The receive span's context: the process span links to it.
		hctx = rc.ctx
	}
	return s.deliverWith(hctx, msgs, ack, handle)
}

// runReceive runs the receive chain, a panic in middleware included.
func (s *subscription) runReceive(ctx context.Context, op driver.Operation, msgs []*Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return s.receive(ctx, op, msgs)
}

// receiveCall is what one Get's receive chain reports back: the ctx its
// middleware built (the receive span) and, for a receive that failed, the
// transport's error, which the innermost function returns.
type receiveCall struct {
	ctx context.Context
	err error
}

type receiveKey struct{}

// passReceive is the innermost function of a receive chain: the message
// was taken already; it keeps the ctx the middleware made for the
// processing that follows.
func passReceive(ctx context.Context, _ driver.Operation, _ []*Message) error {
	rc, _ := ctx.Value(receiveKey{}).(*receiveCall)
	if rc == nil {
		return nil
	}
	rc.ctx = ctx
	return rc.err
}
