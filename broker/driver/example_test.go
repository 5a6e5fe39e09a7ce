package driver_test

import (
	"context"
	"fmt"
	"log"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/memory"
)

// A middleware built from a plain function sees every consume of the
// broker as an Operation and the delivered messages, without knowing the
// transport.
func ExampleMiddlewareFuncs() {
	seen := make(chan string, 1)
	audit := driver.MiddlewareFuncs{Consume: func(next driver.ConsumeFunc) driver.ConsumeFunc {
		return func(ctx context.Context, op driver.Operation, msgs []*driver.Message) error {
			err := next(ctx, op, msgs)
			seen <- fmt.Sprintf("%s %s %s: %d message(s), error %v", op.System, op.Kind, op.Destination, len(msgs), err)
			return err
		}
	}}
	tr, err := memory.New()
	if err != nil {
		log.Fatal(err)
	}
	b := broker.New(tr, broker.WithMiddleware(audit))
	ctx := context.Background()
	err = b.Subscribe("orders.*", func(context.Context, *broker.Message) error { return nil })
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer b.Close(ctx)
	if err := b.Publish(ctx, &broker.Message{Destination: "orders.created", Body: []byte("{}")}); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-seen)
	// Output:
	// memory consume orders.*: 1 message(s), error <nil>
}
