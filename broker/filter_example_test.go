package broker_test

import (
	"context"
	"fmt"

	"github.com/tracebus/tracebus/broker"
)

// Several handlers share one subscription: each message goes to the first
// whose filter takes it, decoded into that handler's type, and the handler
// without a filter takes the rest. With no default, a message nobody takes
// would be dead-lettered (with DeadLetter) or dropped with a warning.
func ExampleFilter() {
	b := memoryBroker(broker.WithLogger(discardLogger()))
	done := make(chan struct{}, 3)
	kind := func(k string) broker.SubscribeOption {
		return broker.Filter(func(m *broker.Message) bool { return m.Headers.Get("kind") == k })
	}
	broker.Handle(b, "payments", func(ctx context.Context, o Order) error {
		fmt.Printf("order %s: %.2f\n", o.ID, o.Total)
		done <- struct{}{}
		return nil
	}, kind("order"), broker.Group("ledger"))
	broker.Handle(b, "payments", func(ctx context.Context, r Refund) error {
		fmt.Printf("refund of %s: %.2f\n", r.OrderID, r.Amount)
		done <- struct{}{}
		return nil
	}, kind("refund"), broker.Group("ledger"))
	b.Subscribe("payments", func(ctx context.Context, msg *broker.Message) error {
		fmt.Printf("something else: %s\n", msg.Body)
		done <- struct{}{}
		return nil
	}, broker.Group("ledger"))
	ctx := context.Background()
	b.Start(ctx)
	defer b.Close(ctx)

	for _, m := range []struct{ kind, body string }{
		{"order", `{"id":"A-1","total":42}`},
		{"refund", `{"order_id":"A-1","amount":12}`},
		{"chargeback", `{"order_id":"A-1"}`},
	} {
		msg := &broker.Message{Destination: "payments", Body: []byte(m.body)}
		msg.Headers.Set("kind", m.kind)
		b.Publish(ctx, msg)
		<-done
	}
	// Output:
	// order A-1: 42.00
	// refund of A-1: 12.00
	// something else: {"order_id":"A-1"}
}
