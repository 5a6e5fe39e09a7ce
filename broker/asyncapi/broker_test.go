package asyncapi_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/asyncapi"
	"github.com/tracebus/tracebus/broker/memory"
	"github.com/tracebus/tracebus/testutil"
)

// TestBuildBrokers builds the document of real brokers with byte-level
// subscriptions: they appear with an unspecified payload, the memory
// transport is an in-process server, and a broker given twice is described
// once.
func TestBuildBrokers(t *testing.T) {
	ctx := context.Background()
	srv := memory.NewServer()
	orders := broker.New(testutil.Memory(t, memory.WithServer(srv)))
	t.Cleanup(func() { _ = orders.Close(ctx) })
	audit := broker.New(testutil.Memory(t, memory.WithServer(srv)))
	t.Cleanup(func() { _ = audit.Close(ctx) })

	nop := func(context.Context, *broker.Message) error { return nil }
	if err := orders.Subscribe("orders.*.created", nop, broker.Group("billing"), broker.Describe("Bill orders", "Bills new orders.")); err != nil {
		t.Fatal(err)
	}
	if err := audit.SubscribeBatch("audit.>", func(context.Context, []*broker.Message) error { return nil }, broker.Batch(10, 0)); err != nil {
		t.Fatal(err)
	}

	doc, err := asyncapi.New(asyncapi.WithInfo(asyncapi.Info{Title: "shop"})).Build(orders, audit, orders, nil)
	if err != nil {
		t.Fatal(err)
	}
	validate(t, doc)
	checkRefs(t, doc)

	if len(doc.Servers) != 1 || doc.Servers["memory"] == nil || doc.Servers["memory"].Host != "in-process" {
		t.Errorf("servers %+v: two brokers on one memory server share it", doc.Servers)
	}
	if len(doc.Operations) != 2 {
		t.Fatalf("operations %v", keys(doc.Operations))
	}
	op := operation(t, doc, "receive_orders_any_created_billing")
	if op.Description != "Bills new orders." || op.Summary != `Consumer group "billing".` || op.Bindings != nil {
		t.Errorf("orders operation %+v", op)
	}
	if !strings.Contains(operation(t, doc, "receive_audit_rest").Summary, "batches") {
		t.Errorf("audit operation does not say it receives batches")
	}
	for _, id := range []string{"orders_any_created", "audit_rest"} {
		m := channel(t, doc, id).Messages["bytes"]
		if m == nil || !strings.Contains(string(m.Payload), "Unspecified") {
			t.Errorf("%s: byte-level subscription without an unspecified payload: %+v", id, m)
		}
	}
}

// TestBuildDocumentControl registers endpoints through the broker's
// options: Undocumented keeps a subscription, a typed publisher and a
// handler's reply channel out of the document (and a channel only they
// use), while Broker.Endpoints still lists them marked; DescribeChannel
// titles and describes the channel, the first endpoint that sets it winning,
// and Describe the operation.
func TestBuildDocumentControl(t *testing.T) {
	ctx := context.Background()
	b := broker.New(testutil.Memory(t))
	t.Cleanup(func() { _ = b.Close(ctx) })

	nop := func(context.Context, *broker.Message) error { return nil }
	if err := b.Subscribe("orders.*", nop, broker.DescribeChannel("Orders", "Every order, by region."), broker.Describe("Bill orders", "Bills orders.")); err != nil {
		t.Fatal(err)
	}
	if err := b.Subscribe("orders.*", nop, broker.Group("stats"), broker.DescribeChannel("Not this", "Nor this.")); err != nil {
		t.Fatal(err)
	}
	if err := b.Subscribe("debug.>", nop, broker.Undocumented()); err != nil {
		t.Fatal(err)
	}
	if err := broker.HandleResult(b, "quotes", func(_ context.Context, o Order) (Invoice, error) {
		return Invoice{OrderID: o.ID}, nil
	}, broker.Undocumented()); err != nil {
		t.Fatal(err)
	}
	if _, err := broker.NewPublisher[Invoice](b, "orders.audit", broker.Undocumented()); err != nil {
		t.Fatal(err)
	}

	doc, err := asyncapi.New().Build(b)
	if err != nil {
		t.Fatal(err)
	}
	validate(t, doc)
	checkRefs(t, doc)
	if got := keys(doc.Channels); len(got) != 1 || got[0] != "orders_any" {
		t.Errorf("channels %v, want only orders_any", got)
	}
	if got := keys(doc.Operations); len(got) != 2 {
		t.Errorf("operations %v, want the two on orders.*", got)
	}
	if ch := channel(t, doc, "orders_any"); ch.Title != "Orders" || ch.Description != "Every order, by region." {
		t.Errorf("channel title %q, description %q", ch.Title, ch.Description)
	}
	if op := operation(t, doc, "receive_orders_any"); op.Title != "Bill orders" || op.Description != "Bills orders." {
		t.Errorf("operation title %q, description %q", op.Title, op.Description)
	}

	var undocumented []string
	for _, e := range b.Endpoints() {
		if e.Undocumented {
			undocumented = append(undocumented, e.Destination)
		}
	}
	if strings.Join(undocumented, " ") != "debug.> quotes orders.audit" {
		t.Errorf("endpoints marked undocumented: %v", undocumented)
	}
}
