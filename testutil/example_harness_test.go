package testutil_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/testutil"
)

// The billing service of the examples: production code, as a service
// package would hold it. It takes its brokers as parameters; main passes a
// NATS broker and a Kafka broker, a test passes brokers from a Harness.

// Order arrives on NATS.
type Order struct {
	ID       string `json:"id"`
	Quantity int    `json:"quantity"`
}

// Invoice leaves on Kafka, keyed by order.
type Invoice struct {
	OrderID string `json:"order_id"`
	Amount  int    `json:"amount"`
}

// wireBilling registers the billing service: every order from
// orders.<region> on NATS becomes an invoice on the Kafka topic invoices.
func wireBilling(nats, kafka *broker.Broker) error {
	invoices := broker.Must(broker.NewPublisher[Invoice](kafka, "invoices",
		broker.KeyFunc(func(inv Invoice) string { return inv.OrderID })))
	return broker.HandleResult(nats, "orders.*", func(_ context.Context, o Order) (Invoice, error) {
		return Invoice{OrderID: o.ID, Amount: 5 * o.Quantity}, nil
	}, broker.Group("billing"), broker.PublishTo(invoices), broker.DeadLetter("billing.dead"))
}

// A test runs the service's real wiring on harness brokers: Publish returns
// once the order was handled and the invoice sent, so the test reads the
// results at once. In a test, t is the test's *testing.T.
func ExampleHarness() {
	t := newFakeT(os.Stdout) // stands in for the *testing.T of a test
	defer t.finish()

	h := testutil.NewHarness(t, testutil.WithSyncDelivery())
	nats, kafka := h.Broker(), h.Broker()
	if err := wireBilling(nats, kafka); err != nil {
		t.Fatal(err)
	}
	orders := broker.Must(broker.NewPublisher[Order](nats, "orders.eu"))
	if err := orders.Publish(context.Background(), Order{ID: "42", Quantity: 2}); err != nil {
		t.Fatal(err)
	}

	inv := testutil.PublishedOne[Invoice](t, h, "invoices", testutil.Key("42"))
	fmt.Printf("%+v\n", inv)
	testutil.AssertHandledOnce(t, h, "orders.*", Order{ID: "42", Quantity: 2})
	h.AssertNoDeadLetters(t)
	fmt.Print(h.Recorder().Tree())
	// Output:
	// {OrderID:42 Amount:10}
	// send orders.eu (producer)
	//   process orders.* (consumer)
	//     send invoices (producer)
}

// With WithHandlerErrors, Publish returns the error of the handler it
// triggered, as FastStream's test client raises it: here a body the typed
// handler cannot decode, dead-lettered by the billing service.
func ExampleWithHandlerErrors() {
	t := newFakeT(os.Stdout) // stands in for the *testing.T of a test
	defer t.finish()

	h := testutil.NewHarness(t, testutil.WithHandlerErrors())
	nats, kafka := h.Broker(), h.Broker()
	if err := wireBilling(nats, kafka); err != nil {
		t.Fatal(err)
	}
	msg := &broker.Message{Destination: "orders.eu", Body: []byte(`{"id": 42}`)}
	msg.Headers.Set(broker.HeaderContentType, "application/json")
	err := nats.Publish(context.Background(), msg)

	var de *broker.DecodeError
	fmt.Println(errors.As(err, &de), de.Type)
	where, _, _ := strings.Cut(err.Error(), ": tracebus: decode")
	fmt.Println(where)
	fmt.Println(len(h.DeadLetters()), "dead letter")
	// Output:
	// true testutil_test.Order
	// testutil: handler of orders.* (group billing) failed, message dead-lettered
	// 1 dead letter
}

// The same service test on NATS: OnNATS("") starts a nats-server for the
// test (OnNATS(url) uses a running one) and every Broker call connects to
// it. Publish does not deliver synchronously on a real transport; with
// WithSyncDelivery it returns once the harness settled, when every
// subscription had the deliveries it is owed, and the assertions read the
// results as on memory.
func ExampleOnNATS() {
	t := newFakeT(os.Stdout) // stands in for the *testing.T of a test
	defer t.finish()

	h := testutil.NewHarness(t, testutil.OnNATS(""), testutil.WithSyncDelivery())
	nats, kafka := h.Broker(), h.Broker()
	if err := wireBilling(nats, kafka); err != nil {
		t.Fatal(err)
	}
	orders := broker.Must(broker.NewPublisher[Order](nats, "orders.eu"))
	if err := orders.Publish(context.Background(), Order{ID: "42", Quantity: 2}); err != nil {
		t.Fatal(err)
	}

	testutil.AssertPublishedOnce(t, h, "invoices", Invoice{OrderID: "42", Amount: 10}, testutil.Key("42"))
	h.AssertNoDeadLetters(t)
	fmt.Print(h.Recorder().Tree())
	// Output:
	// send orders.eu (producer)
	//   process orders.* (consumer)
	//     send invoices (producer)
}

// On Kafka, OnKafka("") starts an in-process cluster for the test. Without
// WithSyncDelivery, Publish returns at once and the assertions wait until
// the harness settled (WithWaitTimeout bounds the wait).
func ExampleOnKafka() {
	t := newFakeT(os.Stdout) // stands in for the *testing.T of a test
	defer t.finish()

	h := testutil.NewHarness(t, testutil.OnKafka(""))
	in, out := h.Broker(), h.Broker()
	invoices := broker.Must(broker.NewPublisher[Invoice](out, "invoices",
		broker.KeyFunc(func(inv Invoice) string { return inv.OrderID })))
	err := broker.HandleResult(in, "orders", func(_ context.Context, o Order) (Invoice, error) {
		return Invoice{OrderID: o.ID, Amount: 5 * o.Quantity}, nil
	}, broker.Group("billing"), broker.PublishTo(invoices))
	if err != nil {
		t.Fatal(err)
	}
	orders := broker.Must(broker.NewPublisher[Order](in, "orders"))
	if err := orders.Publish(context.Background(), Order{ID: "42", Quantity: 2}); err != nil {
		t.Fatal(err)
	}

	inv := testutil.PublishedOne[Invoice](t, h, "invoices", testutil.Key("42"))
	fmt.Printf("%+v\n", inv)
	// Output:
	// {OrderID:42 Amount:10}
}

// A service wired with the subscription options of its production
// transports runs on the memory harness: the options are checked by their
// own transport, then ignored, and listed.
func ExampleHarness_IgnoredOptions() {
	t := newFakeT(os.Stdout) // stands in for the *testing.T of a test
	defer t.finish()

	h := testutil.NewHarness(t, testutil.WithSyncDelivery())
	nats := h.Broker()
	err := broker.Handle(nats, "orders.*", func(context.Context, Order) error { return nil },
		broker.Group("billing"), natsbroker.Stream("ORDERS"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(h.IgnoredOptions())

	// What the option's transport refuses fails here too.
	err = nats.Subscribe("orders.us", func(context.Context, *broker.Message) error { return nil },
		natsbroker.Core(), natsbroker.JetStream())
	fmt.Println(errors.Is(err, broker.ErrInvalid))
	// Output:
	// map[orders.*:[natsbroker.Stream(ORDERS)]]
	// true
}
