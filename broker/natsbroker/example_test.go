package natsbroker_test

import (
	"context"
	"fmt"
	"log"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// The examples run against an embedded nats-server with JetStream; in a
// service, connect to your own servers instead.
func embeddedServer() *natstest.Server {
	srv, err := natstest.Start()
	if err != nil {
		log.Fatal(err)
	}
	return srv
}

// A service on core NATS: a queue-group subscription on a wildcard subject.
func Example() {
	srv := embeddedServer()
	defer srv.Shutdown()

	nc, err := natsgo.Connect(srv.URL(), natsgo.Name("billing"))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	tr, err := natsbroker.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	b := broker.New(tr)
	done := make(chan struct{})
	err = b.Subscribe("orders.*", func(ctx context.Context, msg *broker.Message) error {
		fmt.Printf("%s (subscribed to %s): %s\n", msg.Destination, msg.Delivery.Subscription, msg.Body)
		close(done)
		return nil
	}, broker.Group("billing"))
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	defer b.Close(context.Background())

	err = b.Publish(context.Background(), &broker.Message{Destination: "orders.created", Body: []byte(`{"id":42}`)})
	if err != nil {
		log.Fatal(err)
	}
	<-done
	// Output: orders.created (subscribed to orders.*): {"id":42}
}

// JetStream: the transport creates the stream, publishes wait for the
// stream's acknowledgement, and a durable consumer named by broker.Name
// delivers with the stream's facts.
func ExampleWithStream() {
	srv := embeddedServer()
	defer srv.Shutdown()

	tr, err := natsbroker.Connect(srv.URL(), natsbroker.WithStream(jetstream.StreamConfig{
		Name:     "ORDERS",
		Subjects: []string{"orders.>"},
	}))
	if err != nil {
		log.Fatal(err)
	}
	b := broker.New(tr) // the broker closes the transport, which closes its connection
	defer b.Close(context.Background())

	got := make(chan *broker.Message, 2)
	err = b.Subscribe("orders.*", func(ctx context.Context, msg *broker.Message) error {
		got <- msg.Clone()
		return nil
	}, broker.Name("billing"))
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		log.Fatal(err)
	}

	for _, id := range []string{"order-1", "order-2"} {
		msg := &broker.Message{Destination: "orders.created", ID: id, Body: []byte(id)}
		if err := b.Publish(context.Background(), msg); err != nil {
			log.Fatal(err)
		}
	}
	for range 2 {
		m := <-got
		fmt.Printf("%s: stream %s, sequence %d, consumer %s, delivery %d, id %s\n",
			m.Body, m.Delivery.Stream, m.Delivery.Sequence, m.Delivery.Consumer, m.Delivery.DeliveryCount, m.ID)
	}
	// Output:
	// order-1: stream ORDERS, sequence 1, consumer billing, delivery 1, id order-1
	// order-2: stream ORDERS, sequence 2, consumer billing, delivery 1, id order-2
}

// Message.ID is JetStream's de-duplication id: publishing the same message
// again, after a timeout for instance, stores it once.
func ExampleWithJetStream() {
	srv := embeddedServer()
	defer srv.Shutdown()

	nc, err := natsgo.Connect(srv.URL())
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PAYMENTS", Subjects: []string{"payments.>"}})
	if err != nil {
		log.Fatal(err)
	}

	// JetStream for payments.>, core NATS for everything else.
	tr, err := natsbroker.New(nc, natsbroker.WithJetStream("payments.>"))
	if err != nil {
		log.Fatal(err)
	}
	b := broker.New(tr)
	defer b.Close(context.Background())
	for range 3 {
		msg := &broker.Message{Destination: "payments.captured", ID: "payment-7", Body: []byte("7 EUR")}
		if err := b.Publish(ctx, msg); err != nil {
			log.Fatal(err)
		}
	}
	info, err := stream.Info(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored:", info.State.Msgs)
	// Output: stored: 1
}

// ConfigureConsumer adjusts the consumer the transport creates; here a
// short AckWait, which the transport keeps long handlers alive under.
func ExampleConfigureConsumer() {
	srv := embeddedServer()
	defer srv.Shutdown()

	tr, err := natsbroker.Connect(srv.URL(), natsbroker.WithStream(jetstream.StreamConfig{
		Name: "REPORTS", Subjects: []string{"reports"},
	}))
	if err != nil {
		log.Fatal(err)
	}
	b := broker.New(tr)
	defer b.Close(context.Background())

	done := make(chan int)
	err = b.Subscribe("reports", func(ctx context.Context, msg *broker.Message) error {
		time.Sleep(2 * time.Second) // twice the AckWait
		done <- msg.Delivery.DeliveryCount
		return nil
	}, broker.Name("renderer"), natsbroker.ConfigureConsumer(func(c *jetstream.ConsumerConfig) {
		c.AckWait = time.Second
	}))
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	if err := b.Publish(context.Background(), &broker.Message{Destination: "reports", Body: []byte("q3")}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("delivery count:", <-done)
	// Output: delivery count: 1
}
