package broker_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/tracebus/tracebus/broker"
)

// A subscription to a destination template listens to every subject the
// template matches (here orders.*.created) and reads each parameter of the
// message's subject with Param. Telemetry names the process span after the
// template and records it as messaging.destination.template.
func ExampleParam() {
	b := memoryBroker(broker.WithLogger(discardLogger()))
	done := make(chan struct{})
	broker.Handle(b, "orders.{region}.created", func(ctx context.Context, o Order) error {
		fmt.Printf("order %s in region %s\n", o.ID, broker.Param(ctx, "region"))
		close(done)
		return nil
	})
	ctx := context.Background()
	b.Start(ctx)
	defer b.Close(ctx)

	orders := broker.Must(broker.NewPublisher[Order](b, "orders.eu.created"))
	orders.Publish(ctx, Order{ID: "A-1", Customer: "ada", Total: 42})
	<-done
	// Output:
	// order A-1 in region eu
}

// A publisher to a destination template fills its parameters from each
// value. A value that is empty or would change the subject ("a.b", "*",
// ">", spaces) is refused, and nothing is sent.
func ExampleParamFunc() {
	b := memoryBroker(broker.WithLogger(discardLogger()))
	done := make(chan struct{})
	b.Subscribe("logs.>", func(ctx context.Context, msg *broker.Message) error {
		fmt.Println("received on", msg.Destination)
		close(done)
		return nil
	})
	ctx := context.Background()
	b.Start(ctx)
	defer b.Close(ctx)

	logs := broker.Must(broker.NewPublisher[logLine](b, "logs.{level}",
		broker.ParamFunc(func(l logLine, name string) string { return l.Level })))
	err := logs.Publish(ctx, logLine{Level: "warn.all", Text: "refused"})
	fmt.Println("invalid:", errors.Is(err, broker.ErrInvalid))
	logs.Publish(ctx, logLine{Level: "warn", Text: "disk almost full"})
	<-done
	// Output:
	// invalid: true
	// received on logs.warn
}

// A publisher to a template without ParamFunc (or whose ParamFunc leaves a
// parameter empty) fills it from the handler's ctx: a handler of
// "orders.{region}.created" sends its invoices to its own region.
func ExampleParamFunc_fromHandler() {
	b := memoryBroker(broker.WithLogger(discardLogger()))
	done := make(chan struct{})
	invoices := broker.Must(broker.NewPublisher[Invoice](b, "invoices.{region}"))
	broker.Handle(b, "orders.{region}.created", func(ctx context.Context, o Order) error {
		return invoices.Publish(ctx, Invoice{OrderID: o.ID, Amount: o.Total})
	})
	b.Subscribe("invoices.>", func(ctx context.Context, msg *broker.Message) error {
		fmt.Println("invoice on", msg.Destination)
		close(done)
		return nil
	})
	ctx := context.Background()
	b.Start(ctx)
	defer b.Close(ctx)

	err := invoices.Publish(ctx, Invoice{OrderID: "A-0"}) // no handler, no region
	fmt.Println("invalid:", errors.Is(err, broker.ErrInvalid))
	broker.Must(broker.NewPublisher[Order](b, "orders.eu.created")).Publish(ctx, Order{ID: "A-1", Total: 42})
	<-done
	// Output:
	// invalid: true
	// invoice on invoices.eu
}
