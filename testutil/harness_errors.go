package testutil

import (
	"context"
	"errors"
	"fmt"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/internal/syncerrs"
)

// handlerErrors is the middleware of WithHandlerErrors. On publish it
// gives the outermost publish a collector, which the synchronous memory
// server carries into every delivery the publish causes, and returns what
// was collected. The harness's consume middleware records each failed
// delivery there; the outcomes say which failures are final: a retried
// delivery's failure is taken back, a dead-lettered or dropped one is
// marked so.
type handlerErrors struct{}

func (handlerErrors) WrapPublish(next driver.PublishFunc) driver.PublishFunc {
	return func(ctx context.Context, op driver.Operation, msgs []*broker.Message) error {
		if syncerrs.FromContext(ctx) != nil {
			return next(ctx, op, msgs) // an onward publish: its handlers count for the outermost
		}
		errs := &syncerrs.Collector{}
		err := next(syncerrs.NewContext(ctx, errs), op, msgs)
		herr := errs.Err()
		if err == nil {
			return herr
		}
		if herr == nil {
			return err
		}
		return errors.Join(err, herr)
	}
}

func (handlerErrors) WrapConsume(next driver.ConsumeFunc) driver.ConsumeFunc { return next }

// ObserveOutcomes implements driver.OutcomeObserver.
func (handlerErrors) ObserveOutcomes(op driver.Operation) driver.OutcomeFunc {
	return func(ctx context.Context, o driver.Outcome) {
		errs := syncerrs.FromContext(ctx)
		if errs == nil || len(o.Msgs) == 0 {
			return
		}
		switch o.Kind {
		case driver.OutcomeRetried:
			errs.Set(o.Msgs[0], nil)
		case driver.OutcomeDeadLettered:
			errs.Set(o.Msgs[0], handlerFailure(op, o.Err, "message dead-lettered"))
		case driver.OutcomeDropped:
			errs.Set(o.Msgs[0], handlerFailure(op, o.Err, "message dropped"))
		}
	}
}

// handlerFailure wraps err, naming the subscription of op and what became
// of the message; nil for a nil err.
func handlerFailure(op driver.Operation, err error, outcome string) error {
	if err == nil {
		return nil
	}
	where := "handler of " + op.Destination
	if op.Group != "" {
		where += " (group " + op.Group + ")"
	}
	if outcome != "" {
		return fmt.Errorf("testutil: %s failed, %s: %w", where, outcome, err)
	}
	return fmt.Errorf("testutil: %s failed: %w", where, err)
}
