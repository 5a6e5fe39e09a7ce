package broker_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/memory"
)

// A service subscribes a handler, publishes, and shuts down gracefully.
func Example() {
	tr, err := memory.New()
	if err != nil {
		log.Fatal(err)
	}
	b := broker.New(tr)
	done := make(chan struct{})
	err = b.Subscribe("orders.created", func(ctx context.Context, msg *broker.Message) error {
		fmt.Printf("order %s: %s\n", msg.Headers.Get("order-id"), msg.Body)
		close(done)
		return nil
	}, broker.Group("billing"))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := b.Start(ctx); err != nil {
		panic(err)
	}

	msg := &broker.Message{Destination: "orders.created", Body: []byte(`{"total":42}`)}
	msg.Headers.Set("order-id", "A-1")
	if err := b.Publish(ctx, msg); err != nil {
		panic(err)
	}
	<-done

	shutdown, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := b.Close(shutdown); err != nil {
		panic(err)
	}
	// Output: order A-1: {"total":42}
}

// Example_usage is the snippet in the README: a handler that publishes with
// the ctx it was given (which continues the trace when the broker has the
// telemetry middleware), and Run until ctx is done.
func Example_usage() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()

	tr, err := memory.New() // or natsbroker.New(nc), natsbroker.Connect(url), kafkabroker.New(kafkabroker.WithSeedBrokers(addr))
	if err != nil {
		log.Fatal(err)
	}
	b := broker.New(tr)

	b.Subscribe("orders.created", func(ctx context.Context, msg *broker.Message) error {
		// Returning nil acknowledges; an error is retried with backoff,
		// then dead-lettered or dropped; a panic is recovered.
		return b.Publish(ctx, &broker.Message{Destination: "invoices", Body: msg.Body})
	}, broker.Group("billing"))

	b.Subscribe("invoices", func(ctx context.Context, msg *broker.Message) error {
		fmt.Printf("invoice for %s\n", msg.Body)
		stop() // the example ends here; a service runs until it is told to stop
		return nil
	})
	// Memory, like core NATS, stores nothing: start the subscriptions
	// before the first publish. Run then only blocks.
	if err := b.Start(ctx); err != nil {
		panic(err)
	}
	b.Publish(ctx, &broker.Message{Destination: "orders.created", Body: []byte("order-1")})

	err = b.Run(ctx) // blocks until ctx is done, then drains in-flight handlers
	fmt.Println("run:", err)
	// Output:
	// invoice for order-1
	// run: <nil>
}

// A batch handler receives up to BatchSize messages at once and settles them
// together.
func ExampleBroker_SubscribeBatch() {
	tr, err := memory.New()
	if err != nil {
		log.Fatal(err)
	}
	b := broker.New(tr)
	got := make(chan int)
	_ = b.SubscribeBatch("metrics", func(ctx context.Context, msgs []*broker.Message) error {
		got <- len(msgs)
		return nil
	}, broker.Batch(3, time.Second))
	ctx := context.Background()
	_ = b.Start(ctx)
	defer b.Close(ctx)

	_ = b.PublishBatch(ctx, []*broker.Message{
		{Destination: "metrics", Body: []byte("1")},
		{Destination: "metrics", Body: []byte("2")},
		{Destination: "metrics", Body: []byte("3")},
	})
	fmt.Println("batch of", <-got)
	// Output: batch of 3
}

// Failing messages are retried with backoff and then sent to a dead-letter
// destination.
func ExampleDeadLetter() {
	tr, err := memory.New()
	if err != nil {
		log.Fatal(err)
	}
	b := broker.New(tr)
	dead := make(chan string)
	_ = b.Subscribe("payments", func(ctx context.Context, msg *broker.Message) error {
		return fmt.Errorf("card declined")
	}, broker.MaxAttempts(3), broker.RetryBackoff(broker.ConstantBackoff(time.Millisecond)), broker.DeadLetter("payments.dead"))
	_ = b.Subscribe("payments.dead", func(ctx context.Context, msg *broker.Message) error {
		dead <- fmt.Sprintf("%s after %s attempts: %s", msg.Body,
			msg.Headers.Get(broker.HeaderDeadLetterAttempts), msg.Headers.Get(broker.HeaderDeadLetterError))
		return nil
	})
	ctx := context.Background()
	_ = b.Start(ctx)
	defer b.Close(ctx)

	_ = b.Publish(ctx, &broker.Message{Destination: "payments", Body: []byte("pay-7")})
	fmt.Println(<-dead)
	// Output: pay-7 after 3 attempts: card declined
}

// Run blocks until its context is done and then drains in-flight handlers.
func ExampleBroker_Run() {
	tr, err := memory.New()
	if err != nil {
		log.Fatal(err)
	}
	b := broker.New(tr)
	_ = b.Subscribe("jobs", func(ctx context.Context, msg *broker.Message) error { return nil })

	ctx, stop := context.WithCancel(context.Background())
	go func() {
		// In a service this is signal.NotifyContext(ctx, os.Interrupt).
		time.Sleep(10 * time.Millisecond)
		stop()
	}()
	if err := b.Run(ctx); err != nil {
		fmt.Println("run:", err)
	}
	fmt.Println("stopped")
	// Output: stopped
}

// memoryBroker is broker.New over a memory transport, for the examples
// that are about something else. Example_usage shows the transport and its
// error.
func memoryBroker(opts ...broker.Option) *broker.Broker {
	tr, err := memory.New()
	if err != nil {
		log.Fatal(err)
	}
	return broker.New(tr, opts...)
}
