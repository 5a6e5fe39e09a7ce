package broker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tracebus/tracebus/broker"
)

type Order struct {
	ID       string  `json:"id"`
	Customer string  `json:"customer"`
	Total    float64 `json:"total"`
}

// Validate makes Handle reject bad orders before the handler sees them:
// they are dead-lettered (or dropped), never retried.
func (o Order) Validate() error {
	if o.Total <= 0 {
		return errors.New("total must be positive")
	}
	return nil
}

type Invoice struct {
	OrderID string  `json:"order_id"`
	Amount  float64 `json:"amount"`
}

// A typed handler gets decoded, validated values; MessageFromContext
// reaches the message itself. An order that does not validate goes to the
// dead-letter destination with the reason, without a retry.
func ExampleHandle() {
	b := memoryBroker(broker.WithLogger(discardLogger()))
	done := make(chan struct{})
	broker.Handle(b, "orders.created", func(ctx context.Context, o Order) error {
		msg := broker.MessageFromContext(ctx)
		fmt.Printf("order %s for %s, %.2f (%s)\n", o.ID, o.Customer, o.Total, msg.Headers.Get(broker.HeaderContentType))
		return nil
	}, broker.Group("billing"), broker.DeadLetter("orders.rejected"))
	b.Subscribe("orders.rejected", func(ctx context.Context, msg *broker.Message) error {
		fmt.Println("rejected:", msg.Headers.Get(broker.HeaderDeadLetterError))
		close(done)
		return nil
	})
	ctx := context.Background()
	b.Start(ctx)
	defer b.Close(ctx)

	orders := broker.Must(broker.NewPublisher[Order](b, "orders.created"))
	orders.Publish(ctx, Order{ID: "A-1", Customer: "ada", Total: 42})
	orders.Publish(ctx, Order{ID: "A-2", Customer: "bob", Total: -1})
	<-done
	// Output:
	// order A-1 for ada, 42.00 (application/json)
	// rejected: tracebus: invalid broker_test.Order: total must be positive
}

// A Publisher sends typed values to one destination, encoded with its codec
// and keyed by the value (Kafka record keys).
func ExampleNewPublisher() {
	b := memoryBroker()
	got := make(chan *broker.Message, 1)
	b.Subscribe("invoices", func(ctx context.Context, msg *broker.Message) error {
		got <- msg.Clone()
		return nil
	})
	ctx := context.Background()
	b.Start(ctx)
	defer b.Close(ctx)

	invoices := broker.Must(broker.NewPublisher[Invoice](b, "invoices",
		broker.KeyFunc(func(i Invoice) string { return i.OrderID })))
	if err := invoices.Publish(ctx, Invoice{OrderID: "A-1", Amount: 42}); err != nil {
		panic(err)
	}
	msg := <-got
	fmt.Printf("key %s, %s: %s\n", msg.Key, msg.Headers.Get(broker.HeaderContentType), msg.Body)
	// Output: key A-1, application/json: {"order_id":"A-1","amount":42}
}

// HandleResult sends what the handler returns to its publishers, with the
// handler's ctx: with the telemetry middleware, the invoice's send span is
// a child of the order's process span, on whatever broker the publisher
// sits (NATS in, Kafka out). Returning a nil pointer sends nothing.
func ExampleHandleResult() {
	orders := memoryBroker()    // e.g. natsbroker
	invoicing := memoryBroker() // e.g. kafkabroker
	done := make(chan struct{})
	broker.Handle(invoicing, "invoices", func(ctx context.Context, inv Invoice) error {
		fmt.Printf("invoice for %s: %.2f\n", inv.OrderID, inv.Amount)
		close(done)
		return nil
	})

	invoices := broker.Must(broker.NewPublisher[*Invoice](invoicing, "invoices"))
	broker.HandleResult(orders, "orders.created", func(ctx context.Context, o Order) (*Invoice, error) {
		if o.Customer == "internal" {
			return nil, nil // nothing to invoice
		}
		return &Invoice{OrderID: o.ID, Amount: o.Total * 1.2}, nil
	}, broker.Group("billing"), broker.PublishTo(invoices))

	ctx := context.Background()
	invoicing.Start(ctx)
	orders.Start(ctx)
	defer invoicing.Close(ctx)
	defer orders.Close(ctx)

	pub := broker.Must(broker.NewPublisher[Order](orders, "orders.created"))
	pub.Publish(ctx, Order{ID: "A-0", Customer: "internal", Total: 1})
	pub.Publish(ctx, Order{ID: "A-1", Customer: "ada", Total: 10})
	<-done
	// Output: invoice for A-1: 12.00
}

// With ManualAck the handler settles its delivery itself: here it asks for
// a redelivery after a delay the first time, and acknowledges the second.
func ExampleManualAck() {
	b := memoryBroker()
	done := make(chan struct{})
	broker.Handle(b, "payments", func(ctx context.Context, amount float64) error {
		msg, settle := broker.MessageFromContext(ctx), broker.SettlerFromContext(ctx)
		fmt.Printf("attempt %d: %.2f\n", msg.Delivery.DeliveryCount, amount)
		if msg.Delivery.DeliveryCount == 1 {
			return settle.Nak(ctx, 10*time.Millisecond) // provider busy: try again shortly
		}
		defer close(done)
		return settle.Ack(ctx)
	}, broker.ManualAck())
	ctx := context.Background()
	b.Start(ctx)
	defer b.Close(ctx)

	broker.Must(broker.NewPublisher[float64](b, "payments")).Publish(ctx, 9.99)
	<-done
	// Output:
	// attempt 1: 9.99
	// attempt 2: 9.99
}

// A handler can ask for its message again after a delay of its choosing
// instead of the subscription's backoff.
func ExampleRetryAfter() {
	b := memoryBroker(broker.WithLogger(discardLogger()))
	done := make(chan struct{})
	broker.Handle(b, "emails", func(ctx context.Context, to string) error {
		attempt := broker.MessageFromContext(ctx).Delivery.DeliveryCount
		fmt.Printf("attempt %d to %s\n", attempt, to)
		if attempt == 1 {
			return broker.RetryAfter(errors.New("rate limited"), 5*time.Millisecond)
		}
		close(done)
		return nil
	})
	ctx := context.Background()
	b.Start(ctx)
	defer b.Close(ctx)

	broker.Must(broker.NewPublisher[string](b, "emails")).Publish(ctx, "ada@example.com")
	<-done
	// Output:
	// attempt 1 to ada@example.com
	// attempt 2 to ada@example.com
}
