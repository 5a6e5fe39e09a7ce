package natsbroker

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/tracebus/tracebus/broker/driver"
)

// runner runs the deliveries of one subscription on spec.Concurrency
// worker goroutines. Sources (a nats.go callback, a fetch loop) hand it
// jobs through an unbuffered channel, so a source waits while every worker
// is busy: that is the back-pressure, and with one worker it keeps the
// order in which the source produced the jobs.
//
// With a concurrency of one there are no workers: the source runs each job
// itself, one at a time. The source waiting for its job is the same
// back-pressure and keeps the same order, without a channel hand-off and
// two goroutine switches per message.
//
// Closing happens in three steps, driven by the subscription's Close:
// stop tells sources to stop taking messages; once every source has
// finished, finish lets the workers exit after their current job; abandon
// (when Close's context ends first) tells jobs waiting to retry in place to
// give up.
type runner struct {
	ctx     context.Context // the broker's delivery context
	deliver driver.DeliverFunc

	jobs    chan func()
	inline  bool          // no workers: submit runs the job
	running chan struct{} // holds a token while an inline job runs
	stop    chan struct{}
	done    chan struct{}
	abandon chan struct{}
	live    atomic.Int32  // workers still running
	exited  chan struct{} // closed when the last worker returned

	stopOnce, doneOnce, abandonOnce sync.Once
}

func newRunner(ctx context.Context, deliver driver.DeliverFunc, concurrency int) *runner {
	r := &runner{
		ctx:     ctx,
		deliver: deliver,
		jobs:    make(chan func()),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		abandon: make(chan struct{}),
		exited:  make(chan struct{}),
	}
	if concurrency <= 1 {
		r.inline = true
		r.running = make(chan struct{}, 1)
		return r
	}
	r.live.Store(int32(concurrency))
	for range concurrency {
		go r.work()
	}
	return r
}

func (r *runner) work() {
	defer func() {
		if r.live.Add(-1) == 0 {
			close(r.exited)
		}
	}()
	for {
		select {
		case job := <-r.jobs:
			job()
		case <-r.done:
			return
		}
	}
}

// submit hands job to a worker, waiting for one to be free, or runs it
// when the runner has no workers. It gives up and returns false when
// interrupt (or also, if not nil) is closed first; the caller then still
// owns the message.
func (r *runner) submit(job func(), interrupt, also <-chan struct{}) bool {
	select {
	case <-interrupt:
		return false
	case <-also:
		return false
	default:
	}
	if r.inline {
		r.running <- struct{}{}
		defer r.leave()
		job()
		return true
	}
	select {
	case r.jobs <- job:
		return true
	case <-interrupt:
		return false
	case <-also:
		return false
	}
}

// enter starts an inline job, unless interrupt (or also, if not nil) is
// closed; leave ends it. A source of an inline runner calls them around
// the job instead of submit, sparing the job's closure.
func (r *runner) enter(interrupt, also <-chan struct{}) bool {
	select {
	case <-interrupt:
		return false
	case <-also:
		return false
	default:
	}
	r.running <- struct{}{}
	return true
}

func (r *runner) leave() { <-r.running }

func (r *runner) stopTaking() { r.stopOnce.Do(func() { close(r.stop) }) }
func (r *runner) finish()     { r.doneOnce.Do(func() { close(r.done) }) }

// giveUp abandons the subscription: retries in place stop waiting, and
// workers exit once their current delivery returns.
func (r *runner) giveUp() {
	r.abandonOnce.Do(func() { close(r.abandon) })
	r.finish()
}

// stopping reports whether Close has begun.
func (r *runner) stopping() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// wait waits until every worker has returned, or for a runner without
// workers until the inline job in progress has returned, or until ctx is
// done. It starts no goroutine: one waiting for a handler that never
// returns would outlive the subscription.
func (r *runner) wait(ctx context.Context) error {
	if !r.inline {
		return waitFor(ctx, r.exited)
	}
	select {
	case r.running <- struct{}{}: // no inline job runs
		<-r.running
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitFor waits until ch is closed or ctx is done.
func waitFor(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
