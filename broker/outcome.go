package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tracebus/tracebus/broker/driver"
)

// errProgressUnsupported is returned by Settler.InProgress when the
// subscription's transport has no way to tell its server that a message is
// still being worked on (core NATS, Kafka, memory).
var errProgressUnsupported = fmt.Errorf("tracebus: in-progress reports: %w", errors.ErrUnsupported)

// dropLogInterval is the least time between two warnings about messages a
// transport dropped for one subscription.
var dropLogInterval = 10 * time.Second

// outcomes is a subscription's side of outcome reporting: it hands
// outcomes to the observing middleware and, as the SubscriptionEvents of
// the spec, takes the transport's reports.
type outcomes struct {
	dest      string
	log       *slog.Logger
	observers []driver.OutcomeFunc

	mu      sync.Mutex
	pending map[string]int64 // drops not logged yet, by reason
	total   map[string]int64 // drops reported so far, by reason
	last    time.Time        // the last warning
	timer   *time.Timer
}

func newOutcomes(op driver.Operation, log *slog.Logger, mws []driver.Middleware) *outcomes {
	o := &outcomes{dest: op.Destination, log: log, pending: map[string]int64{}, total: map[string]int64{}}
	for _, mw := range mws {
		if obs, ok := mw.(driver.OutcomeObserver); ok {
			if f := obs.ObserveOutcomes(op); f != nil {
				o.observers = append(o.observers, f)
			}
		}
	}
	return o
}

// record hands an outcome to every observer.
func (o *outcomes) record(ctx context.Context, kind driver.OutcomeKind, msgs []*Message, err error) {
	if len(o.observers) == 0 {
		return
	}
	oc := driver.Outcome{Kind: kind, Messages: len(msgs), Msgs: msgs, Err: err}
	for _, f := range o.observers {
		f(ctx, oc)
	}
}

// Dropped implements SubscriptionEvents: it counts n, and logs at most one
// warning per reason and dropLogInterval with the messages dropped since
// the last one; drops within the interval are logged when it ends, or when
// the subscription closes.
func (o *outcomes) Dropped(ctx context.Context, n int, reason string) {
	if n <= 0 {
		return
	}
	for _, f := range o.observers {
		f(ctx, driver.Outcome{Kind: driver.OutcomeTransportDropped, Messages: n, Reason: reason})
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pending[reason] += int64(n)
	o.total[reason] += int64(n)
	if o.timer != nil {
		return // a warning is due already
	}
	if wait := dropLogInterval - time.Since(o.last); wait > 0 {
		o.timer = time.AfterFunc(wait, o.flush)
		return
	}
	o.warnLocked()
}

// flush logs the drops not logged yet.
func (o *outcomes) flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.timer != nil {
		o.timer.Stop()
		o.timer = nil
	}
	o.warnLocked()
}

func (o *outcomes) warnLocked() {
	for reason, n := range o.pending {
		o.log.LogAttrs(context.Background(), slog.LevelWarn, "tracebus: transport dropped messages before delivery",
			slog.String("destination", o.dest),
			slog.String("reason", reason),
			slog.Int64("messages", n),
			slog.Int64("total", o.total[reason]))
		delete(o.pending, reason)
	}
	o.last = time.Now()
}

// Hung implements SubscriptionEvents.
func (o *outcomes) Hung(ctx context.Context, msgs []*Message) {
	o.record(ctx, driver.OutcomeHung, msgs, nil)
}
