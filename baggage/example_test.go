package baggage_test

import (
	"context"
	"fmt"
	"log"
	"time"

	otelbaggage "go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"

	"github.com/tracebus/tracebus/baggage"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/memory"
	"github.com/tracebus/tracebus/middleware"
)

// newBroker returns a broker whose publishes and consumes carry trace
// context and baggage in W3C headers.
func newBroker() *broker.Broker {
	w3c := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	tr, err := memory.New()
	if err != nil {
		log.Fatal(err)
	}
	return broker.New(tr, broker.WithMiddleware(middleware.NewTelemetry(middleware.WithPropagators(w3c))))
}

// Baggage follows a message from service to service. The checkout starts it,
// the billing handler reads and edits it, and the next hop gets the edited
// baggage without any code passing it along: publishing with the handler's
// ctx is enough.
func Example() {
	b := newBroker()
	done := make(chan struct{})

	// Billing: reads the tenant, records its step, drops the coupon.
	_ = b.Subscribe("orders", func(ctx context.Context, msg *broker.Message) error {
		bg := baggage.FromContext(ctx)
		fmt.Println("billing sees:", bg.All())
		if err := bg.Set("step", "billed"); err != nil {
			return err
		}
		bg.Remove("coupon")
		return b.Publish(ctx, &broker.Message{Destination: "invoices", Body: msg.Body})
	})
	// Invoicing: sees what billing left.
	_ = b.Subscribe("invoices", func(ctx context.Context, msg *broker.Message) error {
		fmt.Println("invoicing sees:", baggage.FromContext(ctx).All())
		// OpenTelemetry-native code sees the same members.
		fmt.Println("OpenTelemetry sees tenant:", otelbaggage.FromContext(ctx).Member("tenant").Value())
		close(done)
		return nil
	})
	ctx := context.Background()
	_ = b.Start(ctx)
	defer b.Close(ctx)

	// Outside a handler, put baggage on the ctx you publish with.
	pctx, err := baggage.ContextWith(ctx, map[string]string{"tenant": "acme", "coupon": "SPRING"})
	if err != nil {
		panic(err)
	}
	_ = b.Publish(pctx, &broker.Message{Destination: "orders", Body: []byte("order 1")})
	<-done
	// Output:
	// billing sees: map[coupon:SPRING tenant:acme]
	// invoicing sees: map[step:billed tenant:acme]
	// OpenTelemetry sees tenant: acme
}

// A batch handler sees the baggage of all its messages merged, later
// messages winning, and each message's own baggage in Batch.
func ExampleBaggage_Batch() {
	b := newBroker()
	done := make(chan struct{})
	_ = b.SubscribeBatch("clicks", func(ctx context.Context, msgs []*broker.Message) error {
		bg := baggage.FromContext(ctx)
		fmt.Println("merged:", bg.All())
		for i, m := range bg.Batch() {
			fmt.Printf("message %d: %v\n", i, m)
		}
		close(done)
		return nil
	}, broker.Batch(2, time.Second))
	ctx := context.Background()
	_ = b.Start(ctx)
	defer b.Close(ctx)

	first, _ := baggage.ContextWith(ctx, map[string]string{"session": "s1", "ab-test": "red"})
	second, _ := baggage.ContextWith(ctx, map[string]string{"session": "s2"})
	_ = b.Publish(first, &broker.Message{Destination: "clicks", Body: []byte("a")})
	_ = b.Publish(second, &broker.Message{Destination: "clicks", Body: []byte("b")})
	<-done
	// Output:
	// merged: map[ab-test:red session:s2]
	// message 0: map[ab-test:red session:s1]
	// message 1: map[session:s2]
}

// Without a broker, Inject writes baggage into message headers and
// FromHeaders reads it back.
func ExampleInject() {
	ctx, _ := baggage.ContextWith(context.Background(), map[string]string{"tenant": "acme", "note": "a b,c"})
	var h broker.Headers
	baggage.Inject(ctx, &h)
	fmt.Println("header:", h.Get("baggage"))
	fmt.Println("read back:", baggage.FromHeaders(h).Get("note"))
	// Output:
	// header: note=a%20b%2Cc,tenant=acme
	// read back: a b,c
}

// Set rejects what W3C baggage cannot carry instead of dropping it later.
func ExampleBaggage_Set() {
	ctx, _ := baggage.ContextWith(context.Background(), nil)
	bg := baggage.FromContext(ctx)
	fmt.Println(bg.Set("user id", "42"))
	fmt.Println(bg.Set("user-id", "42"), bg.Get("user-id"))
	// Output:
	// baggage: invalid key: "user id" is not an RFC 7230 token
	// <nil> 42
}
