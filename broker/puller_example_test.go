package broker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tracebus/tracebus/broker"
)

// A Puller takes one message when the caller asks; the rest stay queued
// for a later Get. The broker need not be started: the consumer opens at
// the first Get (here, with the broker, before anything is published, so
// the memory transport keeps what comes). A Get on an empty destination
// returns at ctx's end with an error matching it.
func ExamplePuller_Get() {
	b := memoryBroker(broker.WithLogger(discardLogger()))
	ctx := context.Background()
	jobs, err := broker.NewPuller[Order](b, "jobs", broker.Group("workers"))
	if err != nil {
		fmt.Println(err)
		return
	}
	b.Start(ctx)
	defer b.Close(ctx)

	pub := broker.Must(broker.NewPublisher[Order](b, "jobs"))
	pub.Publish(ctx, Order{ID: "J-1", Customer: "ada", Total: 1})
	pub.Publish(ctx, Order{ID: "J-2", Customer: "bob", Total: 2})

	// One message, acknowledged when the handler returns nil.
	err = jobs.Get(ctx, func(ctx context.Context, o Order) error {
		fmt.Println("took", o.ID, "from", broker.MessageFromContext(ctx).Destination)
		return nil
	})
	fmt.Println("error:", err)
	jobs.Get(ctx, func(ctx context.Context, o Order) error {
		fmt.Println("took", o.ID)
		return nil
	})

	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	err = jobs.Get(short, func(context.Context, Order) error { return nil })
	fmt.Println("empty:", errors.Is(err, context.DeadlineExceeded))
	// Output:
	// took J-1 from jobs
	// error: <nil>
	// took J-2
	// empty: true
}

// All drains a destination in a for loop: each value is acknowledged when
// the loop body returns; the loop ends when ctx does. A body that breaks
// leaves the rest for later.
func ExamplePuller_All() {
	b := memoryBroker(broker.WithLogger(discardLogger()))
	ctx := context.Background()
	defer b.Close(ctx)
	jobs, err := broker.NewPuller[Order](b, "jobs")
	if err != nil {
		fmt.Println(err)
		return
	}
	pub := broker.Must(broker.NewPublisher[Order](b, "jobs"))
	// The first Get opens the consumer; here, an empty one.
	opened, cancel := context.WithTimeout(ctx, time.Millisecond)
	jobs.Get(opened, func(context.Context, Order) error { return nil })
	cancel()
	for i := range 3 {
		pub.Publish(ctx, Order{ID: fmt.Sprintf("J-%d", i+1), Customer: "ada", Total: 1})
	}

	for o, err := range jobs.All(ctx) {
		if err != nil {
			fmt.Println("bad job:", err)
			continue
		}
		fmt.Println("took", o.ID)
		if o.ID == "J-2" {
			break // J-2 is acknowledged; J-3 stays queued
		}
	}

	drain, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	for o := range jobs.All(drain) {
		fmt.Println("later", o.ID)
	}
	// Output:
	// took J-1
	// took J-2
	// later J-3
}
