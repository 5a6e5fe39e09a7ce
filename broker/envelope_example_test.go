package broker_test

import (
	"context"
	"fmt"
	"time"

	"github.com/tracebus/tracebus/broker"
)

// A HandleResult handler that returns an Envelope sets the key, id,
// correlation id and headers of that one result (FastStream's
// KafkaResponse). The onward Publisher takes the plain Invoice; the
// library's own headers (content-type here) win over the handler's.
func ExampleEnvelope() {
	b := memoryBroker()
	invoices := broker.Must(broker.NewPublisher[Invoice](b, "invoices.issued"))
	broker.HandleResult(b, "orders.paid", func(ctx context.Context, in broker.Envelope[Order]) (broker.Envelope[Invoice], error) {
		out := broker.Envelope[Invoice]{
			Value:         Invoice{OrderID: in.Value.ID, Amount: in.Value.Total},
			Key:           in.Value.Customer, // one Kafka partition per customer
			ID:            "invoice-" + in.Value.ID,
			CorrelationID: in.CorrelationID,
		}
		out.Headers.Set("x-tenant", in.Headers.Get("x-tenant"))
		out.Headers.Set("content-type", "text/plain") // the codec's wins
		return out, nil
	}, broker.PublishTo(invoices))
	done := make(chan struct{})
	b.Subscribe("invoices.issued", func(ctx context.Context, m *broker.Message) error {
		fmt.Println(string(m.Body))
		fmt.Println(m.ID, string(m.Key), m.Headers.Get("x-tenant"), m.Headers.Get(broker.HeaderContentType))
		close(done)
		return nil
	})
	ctx := context.Background()
	b.Start(ctx)
	defer b.Close(ctx)

	paid := broker.Must(broker.NewPublisher[broker.Envelope[Order]](b, "orders.paid"))
	order := broker.Envelope[Order]{Value: Order{ID: "A-1", Customer: "ada", Total: 12}, CorrelationID: "checkout-9"}
	order.Headers.Set("x-tenant", "acme")
	paid.Publish(ctx, order)
	<-done
	// Output:
	// {"order_id":"A-1","amount":12}
	// invoice-A-1 ada acme application/json
}

// A Requester of Envelopes sets the request's correlation id and headers,
// and reads the reply's: the caller's id reaches the replier and comes
// back on the reply, while the broker matches the reply by an id of its
// own, so two requests with the same caller id never take each other's
// replies.
func ExampleRequester_envelope() {
	b := memoryBroker()
	broker.HandleResult(b, "invoices.quote", func(ctx context.Context, in broker.Envelope[Order]) (broker.Envelope[Invoice], error) {
		out := broker.Envelope[Invoice]{Value: Invoice{OrderID: in.Value.ID, Amount: in.Value.Total * 1.2}}
		out.Headers.Set("x-quoted-for", in.CorrelationID)
		out.Headers.Set("x-price-list", "2026-q4")
		return out, nil
	})
	ctx := context.Background()
	b.Start(ctx)
	defer b.Close(ctx)

	quotes := broker.Must(broker.NewRequester[broker.Envelope[Order], broker.Envelope[Invoice]](b, "invoices.quote"))
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	reply, err := quotes.Request(rctx, broker.Envelope[Order]{Value: Order{ID: "A-1", Total: 10}, CorrelationID: "basket-7"})
	fmt.Println(reply.Value, err)
	fmt.Println(reply.CorrelationID, reply.Headers.Get("x-quoted-for"), reply.Headers.Get("x-price-list"))
	// Output:
	// {A-1 12} <nil>
	// basket-7 basket-7 2026-q4
}
