package broker_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/memory"
)

// A dead-letter destination must lie outside the subscription's pattern:
// otherwise every dead letter would come back to the handler that
// rejected it.
func ExampleDeadLetter_loop() {
	tr, _ := memory.New()
	b := broker.New(tr)
	handle := func(context.Context, *broker.Message) error { return nil }

	err := b.Subscribe("orders.*", handle, broker.DeadLetter("orders.rejected"))
	fmt.Println(errors.Is(err, broker.ErrInvalid))
	fmt.Println(err)

	err = b.Subscribe("orders.*", handle, broker.DeadLetter("dlq.orders"))
	fmt.Println(err)
	// Output:
	// true
	// tracebus: subscribe orders.*: dead-letter destination orders.rejected matches the subscription's own pattern, so every dead letter would come back to the handler that rejected it; choose a destination outside orders.*: tracebus: invalid option
	// <nil>
}
