package asyncapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/asyncapi"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
)

// TestBuildTyped builds the document of real typed registrations on a
// memory broker with the telemetry middleware, then checks it against the
// wire: a message a typed publisher sends has headers valid against the
// documented headers schema (content type, trace context, baggage) and a
// body valid against the documented payload schema.
func TestBuildTyped(t *testing.T) {
	ctx := context.Background()
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(ctx) })
	b := broker.New(testutil.Memory(t), broker.WithMiddleware(middleware.NewTelemetry(
		middleware.WithTracerProvider(tp), middleware.WithPropagators(prop))))
	t.Cleanup(func() { _ = b.Close(ctx) })

	invoices := broker.Must(broker.NewPublisher[Invoice](b, "invoices.issued"))
	_ = broker.Must(broker.NewPublisher[Shipment](b, "shipments", broker.KeyFunc(func(s Shipment) string { return s.OrderID })))
	must(t, broker.Handle(b, "orders.*.created", func(context.Context, Order) error { return nil }, broker.Group("stats")))
	must(t, broker.HandleResult(b, "orders.*.billed", func(_ context.Context, o Order) (Invoice, error) {
		return Invoice{OrderID: o.ID}, nil
	}, broker.Group("billing"), broker.PublishTo(invoices), broker.Describe("Bill an order", "Bills an order.")))
	must(t, broker.HandleBatch(b, "shipments", func(context.Context, []Shipment) error { return nil }, broker.Batch(10, 0)))
	got := testkit.NewInbox[*broker.Message](10 * time.Second)
	must(t, b.Subscribe("invoices.issued", func(_ context.Context, m *broker.Message) error {
		got.Put(m)
		return nil
	}))

	doc, err := asyncapi.New(asyncapi.WithInfo(asyncapi.Info{Title: "billing"}), asyncapi.WithPropagators(prop)).Build(b)
	if err != nil {
		t.Fatal(err)
	}
	j := validate(t, doc)
	checkRefs(t, doc)

	stats := operation(t, doc, "receive_orders_any_created_stats")
	if stats.Messages[0].Ref != "#/channels/orders_any_created/messages/Order" {
		t.Errorf("Handle[Order]: messages %v", stats.Messages)
	}
	billing := operation(t, doc, "receive_orders_any_billed_billing")
	if billing.Description != "Bills an order." || billing.Reply == nil ||
		billing.Reply.Messages[0].Ref != "#/channels/orders_any_billed_reply/messages/Invoice" {
		t.Errorf("HandleResult[Order, Invoice]: %+v", billing)
	}
	if o := operation(t, doc, "receive_shipments"); o.Summary != "Receives messages in batches." ||
		o.Messages[0].Ref != "#/channels/shipments/messages/Shipment" {
		t.Errorf("HandleBatch[Shipment]: %+v", o)
	}
	for id, p := range map[string]string{"send_invoices_issued": "invoices.issued", "send_shipments": "shipments"} {
		if o := operation(t, doc, id); o.Action != "send" || *doc.Channels[o.Channel.Ref[len("#/channels/"):]].Address != p {
			t.Errorf("%s: %+v", id, o)
		}
	}
	invoice := channel(t, doc, "invoices_issued").Messages["Invoice"]
	if invoice == nil || invoice.ContentType == "" {
		t.Fatalf("invoices.issued has no typed Invoice message: %v", keys(channel(t, doc, "invoices_issued").Messages))
	}

	// What the publisher sends is what the document says.
	must(t, b.Start(ctx))
	member, err := baggage.NewMember("tenant", "acme")
	must(t, err)
	bag, err := baggage.New(member)
	must(t, err)
	must(t, invoices.Publish(baggage.ContextWithBaggage(ctx, bag), Invoice{OrderID: "o-1", Total: 12.5, Paid: true}))
	m := got.Next(t)

	headers := map[string]any{}
	for _, k := range m.Headers.Keys() {
		headers[k] = m.Headers.Get(k)
	}
	for _, k := range []string{broker.HeaderContentType, "traceparent", "baggage"} {
		if headers[k] == nil {
			t.Errorf("the published message has no %s header: %v", k, headers)
		}
	}
	if err := compileIn(t, j, invoice.Headers).Validate(headers); err != nil {
		t.Errorf("the headers %v do not match the documented headers: %v", headers, err)
	}
	headers[broker.HeaderContentType] = "application/xml"
	if err := compileIn(t, j, invoice.Headers).Validate(headers); err == nil {
		t.Errorf("the documented headers accept another content type")
	}

	payload := compileIn(t, j, invoice.Payload)
	body, err := jsonschema.UnmarshalJSON(bytes.NewReader(m.Body))
	must(t, err)
	if err := payload.Validate(body); err != nil {
		t.Errorf("the body %s does not match the documented payload: %v", m.Body, err)
	}
	if err := payload.Validate(map[string]any{"order_id": "o-1"}); err == nil {
		t.Errorf("the documented payload accepts an invoice without total and paid")
	}
}

// compileIn compiles schema (a payload of the document j) with j as its
// base, so that its "#/components/schemas/..." references resolve.
func compileIn(t *testing.T, j []byte, schema json.RawMessage) *jsonschema.Schema {
	t.Helper()
	d, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	must(t, err)
	docv := d.(map[string]any)
	sv, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	must(t, err)
	docv["x-payload"] = sv
	c := jsonschema.NewCompiler()
	if err := c.AddResource("doc.json", docv); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("doc.json#/x-payload")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestBuildRequesterOnly: a service that only asks (a Requester, its
// replier elsewhere) documents the reply it expects on its send operation,
// and a service that both asks and answers on one destination shares one
// reply channel between the two operations.
func TestBuildRequesterOnly(t *testing.T) {
	b := broker.New(testutil.Memory(t))
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	broker.Must(broker.NewRequester[Order, Invoice](b, "orders.quote"))

	doc, err := asyncapi.New(asyncapi.WithInfo(asyncapi.Info{Title: "checkout"})).Build(b)
	if err != nil {
		t.Fatal(err)
	}
	validate(t, doc)
	checkRefs(t, doc)
	ask := operation(t, doc, "send_orders_quote")
	if ask.Messages[0].Ref != "#/channels/orders_quote/messages/Order" {
		t.Errorf("request messages %v", ask.Messages)
	}
	if ask.Reply == nil || ask.Reply.Channel == nil || ask.Reply.Channel.Ref != "#/channels/orders_quote_reply" ||
		len(ask.Reply.Messages) != 1 || ask.Reply.Messages[0].Ref != "#/channels/orders_quote_reply/messages/Invoice" {
		t.Fatalf("the requester's send operation has reply %+v, want the Invoice reply", ask.Reply)
	}
	if ch := channel(t, doc, "orders_quote_reply"); ch.Address != nil {
		t.Errorf("reply channel address %q, want null (each request carries its own)", *ch.Address)
	}

	must(t, broker.HandleResult(b, "orders.quote", func(_ context.Context, o Order) (Invoice, error) {
		return Invoice{OrderID: o.ID}, nil
	}))
	doc, err = asyncapi.New(asyncapi.WithInfo(asyncapi.Info{Title: "checkout"})).Build(b)
	if err != nil {
		t.Fatal(err)
	}
	validate(t, doc)
	answer := operation(t, doc, "receive_orders_quote")
	ask = operation(t, doc, "send_orders_quote")
	if answer.Reply == nil || ask.Reply == nil || *answer.Reply.Channel != *ask.Reply.Channel {
		t.Errorf("replier reply %+v and requester reply %+v, want one shared reply channel", answer.Reply, ask.Reply)
	}
	if n := len(channel(t, doc, "orders_quote_reply").Messages); n != 1 {
		t.Errorf("reply channel has %d messages, want the one Invoice", n)
	}
}

// TestBuildTemplates: a subscription and a publisher with destination
// templates become channels whose addresses keep the template and declare
// its parameters, and the document stays valid AsyncAPI.
func TestBuildTemplates(t *testing.T) {
	ctx := context.Background()
	b := broker.New(testutil.Memory(t))
	t.Cleanup(func() { _ = b.Close(ctx) })
	must(t, broker.Handle(b, "orders.{region}.created", func(context.Context, Order) error { return nil }))
	_ = broker.Must(broker.NewPublisher[Invoice](b, "invoices.{region}", broker.ParamFunc(func(Invoice, string) string { return "eu" })))

	doc, err := asyncapi.New().Build(b)
	if err != nil {
		t.Fatal(err)
	}
	validate(t, doc)
	want := map[string]string{"orders.{region}.created": "region", "invoices.{region}": "region"}
	for _, ch := range doc.Channels {
		if ch.Address == nil {
			continue
		}
		param, ok := want[*ch.Address]
		if !ok {
			t.Errorf("unexpected channel address %q", *ch.Address)
			continue
		}
		delete(want, *ch.Address)
		if len(ch.Parameters) != 1 || ch.Parameters[param] == nil {
			t.Errorf("channel %q: parameters %v, want %s", *ch.Address, ch.Parameters, param)
		}
	}
	if len(want) != 0 {
		t.Errorf("channels missing: %v", want)
	}
}
