package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/internal/wait"
)

// watchSub is a watch subscription (WatchKV, WatchObjects): one nats.go
// watcher, an ordered consumer on the bucket's stream, whose updates a
// loop goroutine hands to the runner. A watch has no acknowledgements and
// no redelivery, so a Nak is retried in place after its delay, like a core
// NATS subscription with OrderedRetries.
//
// nats.go re-creates the watcher's consumer on its own when it notices a
// gap or the server forgot it (a reconnect, a server restart). When it
// gives up and ends the watcher instead, the loop opens a new one from the
// position after the last update it received (see startKV, startObjects).
type watchSub struct {
	t      *Transport
	spec   driver.SubscriptionSpec
	kind   string // "KV" or "object store", for logs and errors
	bucket string
	r      *runner

	ctx    context.Context // lives as long as the subscription; watchers and reads derive from it
	cancel context.CancelFunc

	// watcherCancel ends the current watcher as nats.go does when it gives
	// up on one (tests use it to make the loop watch again).
	watcherCancel atomic.Pointer[context.CancelFunc]

	stop    chan struct{} // closed by Close: the loop stops watching
	done    chan struct{} // closed when the loop has returned
	closing atomic.Bool
}

// watcher is what the loop needs of a jetstream.KeyWatcher or
// jetstream.ObjectWatcher.
type watcher[E any] interface {
	Updates() <-chan E
	Stop() error
}

// watchOpen opens a watcher with a context that lives until the watcher is
// stopped (nats.go unsubscribes when it ends), bounding only how long the
// opening may take.
func watchOpen[E any](s *watchSub, open func(ctx context.Context) (watcher[E], error)) (watcher[E], context.CancelFunc, error) {
	ctx, cancel := context.WithCancel(s.ctx)
	timer := time.AfterFunc(defaultTimeout, cancel)
	w, err := open(ctx)
	timer.Stop()
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return w, cancel, nil
}

// watchLoop takes the updates of w until Close, and opens a new watcher
// with reopen whenever one ends on its own. take handles one update; it
// runs on the loop's goroutine, so it sees updates in order.
func watchLoop[E any](s *watchSub, w watcher[E], cancel context.CancelFunc, reopen func(ctx context.Context) (watcher[E], error), take func(E)) {
	defer close(s.done)
	for {
		current := cancel
		s.watcherCancel.Store(&current)
		if consume(s, w.Updates(), take) {
			stopWatcher(s, w, cancel)
			return
		}
		cancel()
		s.t.cfg.logger.Warn("natsbroker: watcher ended; watching again from the last update received",
			"bucket", s.bucket, "kind", s.kind, "pattern", s.spec.Destination)
		delay := 100 * time.Millisecond
		for {
			if !wait.Sleep(delay, s.stop) {
				return
			}
			var err error
			if w, cancel, err = watchOpen(s, reopen); err == nil {
				break
			}
			s.t.cfg.logger.Warn("natsbroker: watch again", "bucket", s.bucket, "kind", s.kind, "error", err)
			delay = min(2*delay, 5*time.Second)
		}
	}
}

// consume hands the updates to take until the watcher ends (false) or
// Close stops the subscription (true).
func consume[E any](s *watchSub, updates <-chan E, take func(E)) bool {
	for {
		select {
		case e, ok := <-updates:
			if !ok {
				return false
			}
			take(e)
		case <-s.stop:
			return true
		}
	}
}

// stopWatcher stops w and takes what nats.go still delivers, so that its
// callback, which blocks on a full channel, can return and the watcher's
// goroutine end. Updates taken here are not handled: the subscription is
// closing.
func stopWatcher[E any](s *watchSub, w watcher[E], cancel context.CancelFunc) {
	_ = w.Stop()
	cancel()
	updates := w.Updates()
	for {
		select {
		case _, ok := <-updates:
			if !ok {
				return
			}
		case <-s.r.abandon:
			return
		}
	}
}

// submitUpdate delivers one update on the runner, retrying it in place
// after a Nak: fill makes the message of each attempt. It gives up (and
// logs) when the subscription closes before a worker took the update.
func (s *watchSub) submitUpdate(fill func(bm *broker.Message, attempt int)) {
	job := func() {
		for attempt := 1; ; attempt++ {
			d := new(coreDelivery)
			fill(&d.msg, attempt)
			d.msgs[0] = &d.msg
			s.r.deliver(s.r.ctx, d.msgs[:], &d.ack)
			if !d.ack.retry {
				return
			}
			if !wait.Sleep(d.ack.delay, s.r.abandon) {
				s.lost()
				return
			}
		}
	}
	if !s.r.submit(job, s.r.abandon, s.stop) {
		s.lost()
	}
}

// lost logs an update received but not handled because the subscription
// closed first. A watch keeps no position on the server: a new one starts
// from the bucket's current contents.
func (s *watchSub) lost() {
	s.t.cfg.logger.Debug("natsbroker: watch closed before an update was handled",
		"bucket", s.bucket, "kind", s.kind, "pattern", s.spec.Destination)
}

// Close stops watching, lets the update being handled finish (with its
// retries in place), and waits for the handlers. When ctx ends first it
// returns an error wrapping ctx.Err() and abandons what is left.
func (s *watchSub) Close(ctx context.Context) error {
	if !s.closing.CompareAndSwap(false, true) {
		return nil
	}
	defer s.t.untrack(s)
	defer s.cancel()
	s.r.stopTaking()
	close(s.stop)
	if err := waitFor(ctx, s.done); err != nil {
		s.r.giveUp()
		return fmt.Errorf("natsbroker: close %s watch of %s: %w", s.kind, s.bucket, err)
	}
	s.r.finish()
	if err := s.r.wait(ctx); err != nil {
		s.r.giveUp()
		return fmt.Errorf("natsbroker: close %s watch of %s: %w", s.kind, s.bucket, err)
	}
	return nil
}

// checkWatch checks a watch subscription's spec and options at Subscribe.
func checkWatch(spec *driver.SubscriptionSpec, c *subConfig) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("natsbroker: subscribe %s: "+format+": %w", append([]any{spec.Destination}, append(args, broker.ErrInvalid)...)...)
	}
	if n := len(c.watchKV) + len(c.watchObj); n > 1 {
		return fail("%d buckets to watch; a subscription watches one", n)
	}
	kv := len(c.watchKV) == 1
	var bucket string
	if kv {
		bucket = c.watchKV[0]
	} else {
		bucket = c.watchObj[0]
	}
	if !validBucket(bucket) {
		return fail("bucket name %q: NATS allows only letters, digits, '-' and '_'", bucket)
	}
	if c.core || c.jetStream || len(c.configure) > 0 || len(c.consumeOpts) > 0 || c.maxHandlingSet || c.pendingSet || c.ordered {
		return fail("a watch takes no other natsbroker subscription option")
	}
	if spec.Batch {
		return fail("a watch delivers one update at a time; batch subscriptions are not supported")
	}
	if spec.Group != "" {
		return fail("a watch sees every update; it has no group")
	}
	if kv && !validKeyPattern(spec.Destination) {
		return fail("not a key or key pattern: tokens of letters, digits and -/_= separated by dots, or * and a final >")
	}
	if !kv && spec.Destination == "" {
		return fail("empty object name pattern; \">\" watches every object")
	}
	return nil
}

// validBucket reports whether NATS accepts name as a key-value or object
// store bucket name.
func validBucket(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if !isAlnum(r) && r != '-' && r != '_' {
			return false
		}
	}
	return true
}

// validKeyPattern reports whether p is a key or a key pattern a KV watch
// accepts: dot-separated tokens of the characters NATS allows in keys, "*"
// tokens, and a final ">".
func validKeyPattern(p string) bool {
	for tok, rest, more := "", p, true; more; {
		tok, rest, more = strings.Cut(rest, ".")
		switch {
		case tok == "":
			return false
		case tok == "*":
		case tok == ">":
			return !more
		default:
			for _, r := range tok {
				if !isAlnum(r) && !strings.ContainsRune("-/_=", r) {
					return false
				}
			}
		}
	}
	return true
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

// nameMatches reports whether an object name is taken by a WatchObjects
// pattern: ">" takes every name, a pattern with "*" or ">" tokens matches
// token by token like a subject, anything else only the same name.
func nameMatches(pattern, name string) bool {
	if pattern == ">" || pattern == name {
		return true
	}
	if !strings.Contains(pattern, "*") && !strings.Contains(pattern, ">") {
		return false
	}
	return subjectCovers(pattern, name)
}

// errWatchBucket describes a bucket the transport could not open.
func errWatchBucket(kind, bucket string, err error) error {
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("natsbroker: watch %s bucket %s: it does not exist; create it first, the transport creates no buckets: %w", kind, bucket, err)
	}
	return fmt.Errorf("natsbroker: watch %s bucket %s: %w", kind, bucket, err)
}
