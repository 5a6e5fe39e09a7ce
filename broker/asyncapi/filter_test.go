package asyncapi_test

import (
	"context"
	"testing"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/asyncapi"
	"github.com/tracebus/tracebus/testutil"
)

// Handlers that share a subscription through filters are one receive
// operation on one channel, listing each handler's message and reply; the
// first handler's title and description are the operation's.
func TestBuildFilteredSubscription(t *testing.T) {
	ctx := context.Background()
	b := broker.New(testutil.Memory(t))
	t.Cleanup(func() { _ = b.Close(ctx) })
	kind := func(k string) broker.SubscribeOption {
		return broker.Filter(func(m *broker.Message) bool { return m.Headers.Get("kind") == k })
	}
	if err := broker.Handle(b, "payments", func(context.Context, Order) error { return nil },
		kind("order"), broker.Group("ledger"), broker.Describe("Book payments", "Books orders and shipments.")); err != nil {
		t.Fatal(err)
	}
	if err := broker.HandleResult(b, "payments", func(_ context.Context, s Shipment) (Invoice, error) { return Invoice{}, nil },
		kind("shipment"), broker.Group("ledger"), broker.Describe("Not this", "")); err != nil {
		t.Fatal(err)
	}
	if err := b.Subscribe("payments", func(context.Context, *broker.Message) error { return nil }, broker.Group("ledger")); err != nil {
		t.Fatal(err)
	}
	// Another group is another subscription, and another operation.
	if err := broker.Handle(b, "payments", func(context.Context, Order) error { return nil }, broker.Group("audit")); err != nil {
		t.Fatal(err)
	}

	doc, err := asyncapi.New().Build(b)
	if err != nil {
		t.Fatal(err)
	}
	validate(t, doc)
	checkRefs(t, doc)
	if got := keys(doc.Operations); len(got) != 2 {
		t.Fatalf("operations %v, want one per subscription", got)
	}
	op := operation(t, doc, "receive_payments_ledger")
	if op.Title != "Book payments" || op.Description != "Books orders and shipments." {
		t.Errorf("operation title %q, description %q", op.Title, op.Description)
	}
	if n := len(op.Messages); n != 3 {
		t.Errorf("operation has %d messages, want the three handlers' (Order, Shipment, unspecified): %v", n, op.Messages)
	}
	if op.Reply == nil || len(op.Reply.Messages) != 1 {
		t.Errorf("operation reply %+v, want the shipment handler's Invoice", op.Reply)
	}
	if n := len(channel(t, doc, "payments").Messages); n != 3 {
		t.Errorf("channel has %d messages, want 3", n)
	}
}
