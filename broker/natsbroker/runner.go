package natsbroker

import (
	"context"
	"sync"

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
	workers sync.WaitGroup

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
	}
	if concurrency <= 1 {
		r.inline = true
		r.running = make(chan struct{}, 1)
		return r
	}
	for range concurrency {
		r.workers.Go(r.work)
	}
	return r
}

func (r *runner) work() {
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

// enter starts an inline job, unless interrupt is closed; leave ends it.
// A source of an inline runner calls them around the job instead of
// submit, sparing the job's closure.
func (r *runner) enter(interrupt <-chan struct{}) bool {
	select {
	case <-interrupt:
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

// wait waits until every worker has returned or ctx is done.
func (r *runner) wait(ctx context.Context) error {
	idle := make(chan struct{})
	go func() {
		r.workers.Wait()
		if r.inline {
			r.running <- struct{}{} // an inline job has returned
			<-r.running
		}
		close(idle)
	}()
	select {
	case <-idle:
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
