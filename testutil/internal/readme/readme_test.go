package readme_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/testutil"
)

// The service and its test exactly as README.md shows them ("Use it" and
// "Testing a service"), so the README cannot drift from the API.

type Order struct {
	ID    string  `json:"id"`
	Total float64 `json:"total"`
}

// Validate rejects bad orders before the handler sees them: they are
// dead-lettered with the reason (or dropped), never retried.
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

func Bill(ctx context.Context, o Order) (Invoice, error) {
	return Invoice{OrderID: o.ID, Amount: o.Total * 1.2}, nil
}

// Wire registers the service on its brokers: main passes NATS and Kafka,
// tests pass memory brokers.
func Wire(orders, invoicing broker.Registrar) error { // a *Broker or a *Router
	invoices := broker.Must(broker.NewPublisher[Invoice](invoicing, "invoices",
		broker.KeyFunc(func(i Invoice) string { return i.OrderID })))
	return broker.HandleResult(orders, "orders.*", Bill,
		broker.Group("billing"), broker.PublishTo(invoices), broker.DeadLetter("dlq.orders"))
}

func TestBilling(t *testing.T) {
	h := testutil.NewHarness(t, testutil.WithSyncDelivery())
	nats, kafka := h.Broker(), h.Broker()
	if err := Wire(nats, kafka); err != nil {
		t.Fatal(err)
	}
	broker.Must(broker.NewPublisher[Order](nats, "orders.eu")).Publish(t.Context(), Order{ID: "42", Total: 10})

	testutil.AssertPublishedOnce(t, h, "invoices", Invoice{OrderID: "42", Amount: 12}, testutil.Key("42"))
	h.AssertNoDeadLetters(t)
	h.AssertSpanTree(t, `
		send orders.eu (producer)
		  process orders.* (consumer)
		    send invoices (producer)`)

	// An invalid order is dead-lettered once, not retried and not looped.
	if err := broker.Must(broker.NewPublisher[Order](nats, "orders.eu")).Publish(t.Context(), Order{ID: "43"}); err != nil {
		t.Fatal(err)
	}
	dead := h.Published("dlq.orders")
	if len(dead) != 1 || len(h.DeadLetters()) != 1 {
		t.Fatalf("%d messages dead-lettered to dlq.orders (%d dead letters in all), want 1", len(dead), len(h.DeadLetters()))
	}
	if got := dead[0].Headers.Get(broker.HeaderDeadLetterOrigin); got != "orders.eu" {
		t.Errorf("dead letter from %q, want orders.eu", got)
	}
}

func TestBillingOnNATS(t *testing.T) {
	// OnNATS(""): a nats-server started for the test; both brokers are on it.
	h := testutil.NewHarness(t, testutil.OnNATS(""), testutil.WithSyncDelivery())
	nats, kafka := h.Broker(), h.Broker()
	if err := Wire(nats, kafka); err != nil {
		t.Fatal(err)
	}
	if err := broker.Must(broker.NewPublisher[Order](nats, "orders.eu")).Publish(t.Context(), Order{ID: "42", Total: 10}); err != nil {
		t.Fatal(err)
	}
	testutil.AssertPublishedOnce(t, h, "invoices", Invoice{OrderID: "42", Amount: 12}, testutil.Key("42"))
}
