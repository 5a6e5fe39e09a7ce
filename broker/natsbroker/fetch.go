package natsbroker

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/internal/wait"
)

// fetchSub is a JetStream batch subscription: a loop of pull requests
// (jetstream's Fetch) for up to BatchSize messages each, waiting at most
// BatchWait. A batch is delivered as soon as it is full, and otherwise when
// the request expires on the server, BatchWait after it began, so never
// later than BatchWait (and the way back from the server) after its first
// message. An idle subscription thus sends one
// pull request per BatchWait.
//
// A failing fetch (the connection is recovering, the server restarts) is
// tried again after a growing pause; when the server no longer knows the
// consumer, it is created again where the subscription got to (see
// position). A fetch from a deleted consumer may just come back empty, so
// the loop also checks the consumer when the server announces its deletion
// and every blockedCheck while fetches bring nothing.
type fetchSub struct {
	jsDelivery
	loopCtx    context.Context // cancelled when Close gives up
	cancel     context.CancelFunc
	sourceDone chan struct{}
	closing    atomic.Bool
	suspect    atomic.Bool // the server announced the consumer's deletion
}

func (t *Transport) subscribeFetch(ctx, setupCtx context.Context, spec driver.SubscriptionSpec, deliver driver.DeliverFunc, sc *subConfig, cons *jsConsumer) (*fetchSub, error) {
	s := &fetchSub{
		jsDelivery: jsDelivery{t: t, spec: spec, cons: cons, maxHandling: sc.maxHandling},
		sourceDone: make(chan struct{}),
	}
	cons.deleted = func() { s.suspect.Store(true) }
	if _, err := cons.open(setupCtx); err != nil {
		return nil, err
	}
	s.r = newRunner(ctx, deliver, spec.Concurrency)
	s.loopCtx, s.cancel = context.WithCancel(context.Background())
	go s.loop()
	return s, nil
}

func (s *fetchSub) loop() {
	defer close(s.sourceDone)
	defer s.cons.stopListening()
	failures := 0
	lastCheck := time.Now()
	for !s.r.stopping() {
		msgs, err := s.fetch()
		if s.r.stopping() {
			s.release(msgs...)
			return
		}
		s.received(msgs)
		if len(msgs) > 0 && !s.r.submit(func() { s.run(msgs) }, s.r.stop, nil) {
			s.release(msgs...)
			return
		}
		if s.loopCtx.Err() != nil {
			return
		}
		if err == nil {
			failures = 0
			if s.suspect.Swap(false) || len(msgs) == 0 && time.Since(lastCheck) >= blockedCheck {
				lastCheck = time.Now()
				s.reopenIfGone()
			}
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

// fetch makes one pull request and collects what it brings. The request
// expires on the server after BatchWait, which ends the batch with a status
// message; a client-side deadline would instead drop messages the server
// sent just before it, and those would come back only after AckWait. When
// Close begins, what the request brings until it ends is returned (to be
// handed back); when Close gives up, the rest is left to AckWait.
func (s *fetchSub) fetch() ([]jetstream.Msg, error) {
	batch, err := s.cons.current().Fetch(s.spec.BatchSize, jetstream.FetchMaxWait(s.spec.BatchWait))
	if err != nil {
		return nil, err
	}
	var msgs []jetstream.Msg
	in := batch.Messages()
	for {
		select {
		case m, ok := <-in:
			if !ok {
				return msgs, batch.Error()
			}
			msgs = append(msgs, m)
		case <-s.loopCtx.Done():
			return msgs, s.loopCtx.Err()
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
	if _, err := s.cons.reopen(ctx); err != nil {
		s.t.cfg.logger.Warn("natsbroker: creating the consumer again failed",
			"subject", s.spec.Destination, "stream", s.cons.stream, "error", err)
	}
}

// Close stops fetching (a fetch under way runs until the server ends it,
// at most BatchWait, and what it brought goes back to the server), waits until every delivery in flight
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
