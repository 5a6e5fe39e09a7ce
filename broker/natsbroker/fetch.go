package natsbroker

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/internal/wait"
)

// fetchSub is a JetStream batch subscription: a loop of pull requests
// (jetstream's Fetch) for up to BatchSize messages each, waiting at most
// BatchWait. A batch is delivered as soon as it is full, and otherwise when
// BatchWait has passed since the request began, so never later than
// BatchWait after its first message. An idle subscription thus sends one
// pull request per BatchWait.
//
// A failing fetch (the connection is recovering, the server restarts) is
// tried again after a growing pause; when the server no longer knows the
// consumer, it is created again.
type fetchSub struct {
	jsDelivery
	loopCtx    context.Context // cancelled when Close gives up
	cancel     context.CancelFunc
	sourceDone chan struct{}
	closing    atomic.Bool
}

func (t *Transport) subscribeFetch(ctx, setupCtx context.Context, spec broker.SubscriptionSpec, deliver broker.DeliverFunc, cons *jsConsumer) (*fetchSub, error) {
	if _, err := cons.open(setupCtx); err != nil {
		return nil, err
	}
	s := &fetchSub{
		jsDelivery: jsDelivery{t: t, spec: spec, cons: cons, r: newRunner(ctx, deliver, spec.Concurrency)},
		sourceDone: make(chan struct{}),
	}
	s.loopCtx, s.cancel = context.WithCancel(context.Background())
	go s.loop()
	return s, nil
}

func (s *fetchSub) loop() {
	defer close(s.sourceDone)
	failures := 0
	for !s.r.stopping() {
		msgs, err := s.fetch()
		if s.r.stopping() {
			s.release(msgs...)
			return
		}
		if len(msgs) > 0 && !s.r.submit(func() { s.run(msgs) }, s.r.stop) {
			s.release(msgs...)
			return
		}
		if s.loopCtx.Err() != nil {
			return
		}
		// The request's own deadline passing is an empty batch, not a
		// failure.
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			failures = 0
			continue
		}
		failures++
		s.t.cfg.logger.Debug("natsbroker: fetch failed", "subject", s.spec.Destination,
			"stream", s.cons.stream, "failures", failures, "error", err)
		if failures%3 == 0 {
			s.reopenIfGone()
		}
		wait.Sleep(wait.Retry(failures), s.r.stop)
	}
}

// fetch makes one pull request and collects what it brings. When Close
// begins, the request is cancelled rather than left to run out its
// BatchWait; what already arrived is returned (to be handed back).
func (s *fetchSub) fetch() ([]jetstream.Msg, error) {
	ctx, cancel := context.WithTimeout(s.loopCtx, s.spec.BatchWait)
	defer cancel()
	batch, err := s.cons.current().Fetch(s.spec.BatchSize, jetstream.FetchContext(ctx))
	if err != nil {
		return nil, err
	}
	var msgs []jetstream.Msg
	in, stop := batch.Messages(), s.r.stop
	for {
		select {
		case m, ok := <-in:
			if !ok {
				return msgs, batch.Error()
			}
			msgs = append(msgs, m)
		case <-stop:
			cancel()
			stop = nil
		}
	}
}

func (s *fetchSub) reopenIfGone() {
	ctx, cancel := context.WithTimeout(s.loopCtx, defaultTimeout)
	defer cancel()
	if !s.cons.gone(ctx) {
		return
	}
	s.t.cfg.logger.Warn("natsbroker: consumer no longer exists; creating it again",
		"subject", s.spec.Destination, "stream", s.cons.stream)
	if _, err := s.cons.open(ctx); err != nil {
		s.t.cfg.logger.Warn("natsbroker: creating the consumer again failed",
			"subject", s.spec.Destination, "stream", s.cons.stream, "error", err)
	}
}

// Close stops fetching (a fetch under way is cancelled, and what it
// brought goes back to the server), waits until every delivery in flight
// was settled and the acks reached the server, and deletes the consumer if
// it was ephemeral. When ctx ends first, it returns an error wrapping
// ctx.Err(); unsettled messages are redelivered after AckWait.
func (s *fetchSub) Close(ctx context.Context) error {
	if !s.closing.CompareAndSwap(false, true) {
		return nil
	}
	defer s.t.untrack(s)
	defer s.cancel()
	s.r.stopTaking()
	if err := waitFor(ctx, s.sourceDone); err != nil {
		s.r.giveUp()
		s.cancel()
		return s.closeErr(err)
	}
	return s.finish(ctx)
}
