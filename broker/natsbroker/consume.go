package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/internal/wait"
)

// jsDelivery is what the two kinds of JetStream subscription share: how a
// delivery of JetStream messages reaches the broker and is settled.
type jsDelivery struct {
	t           *Transport
	spec        driver.SubscriptionSpec
	r           *runner
	cons        *jsConsumer
	maxHandling time.Duration // see MaxHandlingTime
}

// run delivers msgs and keeps them alive while the handler works, up to
// the maximum handling time.
func (d *jsDelivery) run(msgs []jetstream.Msg) {
	out := make([]*broker.Message, len(msgs))
	seqs := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = jetStreamMessage(m, &d.spec)
		seqs[i] = out[i].Delivery.Sequence
	}
	d.deliver(out, &jsAck{msgs: msgs, seqs: seqs, pos: d.cons.pos}, new(keepAlive))
}

// jsOne is the delivery of a single JetStream message in one allocation:
// the message handed to the handler, the slices that hold it, its
// acknowledger and its keep-alive.
type jsOne struct {
	msg  broker.Message
	out  [1]*broker.Message
	src  [1]jetstream.Msg
	seqs [1]uint64
	ack  jsAck
	keep keepAlive
}

// receiveOne records m in the subscription's position, as received does,
// and prepares its delivery, parsing its metadata once for both.
func (d *jsDelivery) receiveOne(m jetstream.Msg) *jsOne {
	one := &jsOne{src: [1]jetstream.Msg{m}}
	md, err := m.Metadata()
	if err == nil {
		d.cons.pos.received(md.Sequence.Stream)
	}
	fillJetStreamMessage(&one.msg, m, md, err, &d.spec)
	one.out[0] = &one.msg
	one.seqs[0] = one.msg.Delivery.Sequence
	one.ack = jsAck{msgs: one.src[:], seqs: one.seqs[:], pos: d.cons.pos}
	return one
}

// runOne delivers a message prepared by receiveOne, as run does.
func (d *jsDelivery) runOne(one *jsOne) { d.deliver(one.out[:], &one.ack, &one.keep) }

// deliver delivers out, settled by a, and has keep report progress on
// a.msgs while the handler works, up to the maximum handling time.
func (d *jsDelivery) deliver(out []*broker.Message, a *jsAck, keep *keepAlive) {
	// The handler's own context, so that giving up on it can tell it so.
	ctx, cancel := context.WithCancel(d.r.ctx)
	defer cancel()
	a.keep = keep
	// Report progress three times per AckWait: often enough that a late
	// timer or a slow network does not let the deadline pass.
	keep.start(a.msgs, max(d.cons.ackWait()/3, time.Millisecond), d.maxHandling, func() {
		d.hung(ctx, a, out)
		cancel()
	})
	d.r.deliver(ctx, out, a)
	keep.stop()
}

// hung gives up on a delivery whose handler ran past the maximum handling
// time: the hang is logged and reported, then its messages go back to the
// server at once, for another handler (in that order, so the report is
// there before the redelivery). The handler's goroutine cannot be stopped;
// its context is cancelled and what it settles later is ignored.
func (d *jsDelivery) hung(ctx context.Context, a *jsAck, out []*broker.Message) {
	consumer := ""
	if info := d.cons.current().CachedInfo(); info != nil {
		consumer = info.Name
	}
	attrs := []any{"subject", d.spec.Destination, "stream", d.cons.stream, "consumer", consumer,
		"messages", len(out), "max_handling_time", d.maxHandling}
	if len(out) > 0 {
		attrs = append(attrs, "message_id", capID(out[0].ID), "sequence", out[0].Delivery.Sequence)
	}
	d.t.cfg.logger.Warn("natsbroker: handler ran past the maximum handling time; its messages go back to the server", attrs...)
	if ev := d.spec.Events; ev != nil {
		ev.Hung(ctx, out)
	}
	if err := a.each("nak", jetstream.Msg.Nak); err != nil {
		d.t.cfg.logger.Warn("natsbroker: handing back the messages of a hung handler failed; the server redelivers them after AckWait",
			"subject", d.spec.Destination, "consumer", consumer, "error", err)
	}
}

// maxLoggedID caps a message id in log lines, as the broker's own lines and
// spans do: ids come from publishers.
const maxLoggedID = 256

func capID(id string) string {
	if len(id) <= maxLoggedID {
		return id
	}
	return strings.ToValidUTF8(id[:maxLoggedID], "") + "…"
}

// received records msgs in the subscription's position as soon as they
// arrive, before they wait for a worker.
func (d *jsDelivery) received(msgs []jetstream.Msg) {
	for _, m := range msgs {
		if md, err := m.Metadata(); err == nil {
			d.cons.pos.received(md.Sequence.Stream)
		}
	}
}

// release hands messages that were received but will not be delivered
// (the subscription is closing) back to the server at once, instead of
// leaving them until AckWait expires. JetStream counts this as a delivery.
func (d *jsDelivery) release(msgs ...jetstream.Msg) {
	for _, m := range msgs {
		_ = m.Nak()
	}
}

// closeErr wraps an error of Close.
func (d *jsDelivery) closeErr(err error) error {
	return fmt.Errorf("natsbroker: close subscription to %s: %w", d.spec.Destination, err)
}

// finish is the end of Close once no more messages come in: wait for the
// handlers, make sure their acks reached the server, drop an ephemeral
// consumer.
func (d *jsDelivery) finish(ctx context.Context) error {
	d.r.finish()
	if err := d.r.wait(ctx); err != nil {
		d.r.giveUp()
		return d.closeErr(err)
	}
	var errs []error
	if !d.t.nc.IsClosed() {
		// Acks are published without waiting for the server; a flush
		// makes sure they arrived before Close reports them settled.
		if err := flush(ctx, d.t.nc); err != nil {
			errs = append(errs, d.closeErr(fmt.Errorf("flush acknowledgements: %w", err)))
		}
		if err := d.cons.remove(ctx); err != nil {
			errs = append(errs, d.closeErr(err))
		}
	}
	return errors.Join(errs...)
}

// consumeSub is a plain JetStream subscription: jetstream's Consume, which
// keeps pull requests outstanding and calls back for every message, as a
// push consumer would.
//
// nats.go re-issues the pull requests when the connection comes back. A
// watcher covers what it does not: when consuming stops on its own (the
// consumer was deleted) or heartbeats stop and the server no longer knows
// the consumer (an ephemeral one expired while the client was away), the
// consumer is created again where the subscription got to (see position)
// and consuming resumes.
//
// nats.go reports a deleted consumer on the goroutine that runs the
// message callback, so while every worker is busy (the callback waits for
// one) it would go unnoticed. The watcher therefore also listens to the
// server's consumer-deleted advisory, and checks the consumer itself every
// blockedCheck while the callback has been waiting.
type consumeSub struct {
	jsDelivery
	opts    []jetstream.PullConsumeOpt
	userErr jetstream.ConsumeErrHandler

	mu   sync.Mutex
	cc   jetstream.ConsumeContext
	lost chan struct{} // closed when the current consumer is given up
	// told is set once the user's error handler has heard that the
	// current consumer is gone, from nats.go or from the watcher.
	told *atomic.Bool

	check      chan struct{} // the consumer may be gone
	waiting    atomic.Bool   // the callback waits for a free worker
	sourceDone chan struct{}
	closing    atomic.Bool
}

// blockedCheck is how often the watcher asks the server whether the
// consumer still exists while the callback is waiting for a worker.
const blockedCheck = 2 * time.Second

func (t *Transport) subscribeConsume(ctx, setupCtx context.Context, spec driver.SubscriptionSpec, deliver driver.DeliverFunc, sc *subConfig, cons *jsConsumer) (*consumeSub, error) {
	s := &consumeSub{
		jsDelivery: jsDelivery{t: t, spec: spec, cons: cons, maxHandling: sc.maxHandling},
		check:      make(chan struct{}, 1),
		sourceDone: make(chan struct{}),
	}
	// The client buffers as many messages as nats.go does by default
	// (jetstream.DefaultMaxMessages, 500): a smaller buffer was present in
	// every stall seen under load and cost about a third of the
	// throughput. A buffered message already counts down its AckWait, so
	// subscriptions with slow handlers should lower it with
	// ConsumeOptions(jetstream.PullMaxMessages(n)).
	for _, o := range sc.consumeOpts {
		if h, ok := o.(jetstream.ConsumeErrHandler); ok {
			s.userErr = h
			continue
		}
		s.opts = append(s.opts, o)
	}
	cons.deleted = s.mayBeGone
	s.r = newRunner(ctx, deliver, spec.Concurrency)
	cc, err := s.consume(setupCtx, false)
	if err != nil {
		s.r.finish()
		return nil, err
	}
	s.cc = cc
	go s.watch()
	return s, nil
}

// consume opens the consumer (again, if reopen) and starts consuming from
// it, with a callback of its own that gives up waiting for a worker when
// this consumer is given up.
func (s *consumeSub) consume(ctx context.Context, reopen bool) (jetstream.ConsumeContext, error) {
	var (
		cons jetstream.Consumer
		err  error
	)
	if reopen {
		cons, err = s.cons.reopen(ctx)
	} else {
		cons, err = s.cons.open(ctx)
	}
	if err != nil {
		return nil, err
	}
	lost := make(chan struct{})
	told := new(atomic.Bool)
	opts := append(s.opts[:len(s.opts):len(s.opts)],
		jetstream.ConsumeErrHandler(func(cc jetstream.ConsumeContext, err error) { s.onErr(cc, err, told) }))
	cc, err := cons.Consume(func(m jetstream.Msg) { s.onMsg(m, lost) }, opts...)
	if err != nil {
		return nil, fmt.Errorf("natsbroker: consume from stream %s: %w", s.cons.stream, err)
	}
	s.mu.Lock()
	s.lost = lost
	s.told = told
	s.mu.Unlock()
	return cc, nil
}

// onMsg is jetstream's callback; it waits for a free worker. A message of
// a consumer given up meanwhile is dropped: it stays open in the position,
// so the new consumer delivers it again.
//
// With a runner without workers the callback runs the delivery itself,
// still flagged as waiting: jetstream's callback goroutine, which would
// report a deleted consumer, is held up for as long as the handler runs.
func (s *consumeSub) onMsg(m jetstream.Msg, lost <-chan struct{}) {
	one := s.receiveOne(m)
	s.waiting.Store(true)
	var ok bool
	if s.r.inline {
		ok = s.runInline(one, lost)
	} else {
		ok = s.r.submit(func() { s.runOne(one) }, s.r.stop, lost)
	}
	s.waiting.Store(false)
	if ok {
		return
	}
	select {
	case <-lost:
	default:
		s.release(m)
	}
}

// runInline runs one's delivery on the calling goroutine, unless the
// subscription stops or the consumer is lost first.
func (s *consumeSub) runInline(one *jsOne, lost <-chan struct{}) bool {
	if !s.r.enter(s.r.stop, lost) {
		return false
	}
	defer s.r.leave()
	s.runOne(one)
	return true
}

// onErr is jetstream's error handler for one consumer; told records that
// the user's handler heard of its deletion.
func (s *consumeSub) onErr(cc jetstream.ConsumeContext, err error, told *atomic.Bool) {
	deleted := errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted)
	if s.userErr != nil && (!deleted || told.CompareAndSwap(false, true)) {
		s.userErr(cc, err)
	}
	if deleted || errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, natsgo.ErrNoResponders) {
		s.mayBeGone()
	}
}

// tellGone gives the user's error handler the deletion of the consumer
// behind cc when the watcher noticed it first (from the server's advisory
// or its own check): nats.go stops reporting once cc is stopped.
func (s *consumeSub) tellGone(cc jetstream.ConsumeContext) {
	s.mu.Lock()
	told := s.told
	s.mu.Unlock()
	if s.userErr != nil && told != nil && told.CompareAndSwap(false, true) {
		s.userErr(cc, jetstream.ErrConsumerDeleted)
	}
}

// mayBeGone asks the watcher to check whether the consumer still exists.
func (s *consumeSub) mayBeGone() {
	select {
	case s.check <- struct{}{}:
	default:
	}
}

func (s *consumeSub) current() jetstream.ConsumeContext {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cc
}

// giveUpConsumer stops consuming from the current consumer and lets a
// callback waiting for a worker drop its message.
func (s *consumeSub) giveUpConsumer(cc jetstream.ConsumeContext) {
	s.mu.Lock()
	select {
	case <-s.lost:
	default:
		close(s.lost)
	}
	s.mu.Unlock()
	cc.Stop()
}

// watch supervises consuming until Close, then drains it.
func (s *consumeSub) watch() {
	defer close(s.sourceDone)
	defer s.cons.stopListening()
	tick := time.NewTicker(blockedCheck)
	defer tick.Stop()
	for {
		cc := s.current()
		select {
		case <-s.r.stop:
			// Messages nats.go has buffered still pass through onMsg,
			// which hands them back to the server.
			cc.Drain()
			select {
			case <-cc.Closed():
			case <-s.r.abandon:
				cc.Stop()
			}
			return
		case <-cc.Closed():
			if s.r.stopping() {
				continue // Close is draining it
			}
			if s.t.nc.IsClosed() {
				// Nothing can be consumed any more; wait for Close.
				<-s.r.stop
				return
			}
			s.t.cfg.logger.Warn("natsbroker: consuming stopped; re-establishing",
				"subject", s.spec.Destination, "stream", s.cons.stream)
			s.giveUpConsumer(cc)
			s.resume()
		case <-tick.C:
			if s.waiting.Load() {
				s.mayBeGone()
			}
		case <-s.check:
			ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
			gone := s.cons.gone(ctx)
			cancel()
			if gone {
				s.t.cfg.logger.Warn("natsbroker: consumer no longer exists; creating it again",
					"subject", s.spec.Destination, "stream", s.cons.stream)
				s.giveUpConsumer(cc)
				s.tellGone(cc)
				s.resume()
			}
		}
	}
}

// resume opens the consumer again and consumes from it, retrying with a
// growing pause until it works or the subscription closes.
func (s *consumeSub) resume() {
	for failures := 1; ; failures++ {
		ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
		cc, err := s.consume(ctx, true)
		cancel()
		if err == nil {
			s.mu.Lock()
			s.cc = cc
			s.mu.Unlock()
			return
		}
		s.t.cfg.logger.Warn("natsbroker: re-establishing consumption failed",
			"subject", s.spec.Destination, "stream", s.cons.stream, "error", err)
		if !wait.Sleep(wait.Retry(failures), s.r.stop) {
			return
		}
	}
}

// Close stops taking messages (buffered ones go back to the server),
// waits until every delivery in flight was settled and the acks reached the
// server, and deletes the consumer if it was ephemeral. When ctx ends
// first, it returns an error wrapping ctx.Err(); unsettled messages are
// redelivered after AckWait.
func (s *consumeSub) Close(ctx context.Context) error {
	if !s.closing.CompareAndSwap(false, true) {
		return nil
	}
	defer s.t.untrack(s)
	s.r.stopTaking()
	if err := waitFor(ctx, s.sourceDone); err != nil {
		s.r.giveUp()
		return s.closeErr(err)
	}
	return s.finish(ctx)
}
