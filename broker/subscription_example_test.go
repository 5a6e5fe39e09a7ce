package broker_test

import (
	"context"
	"fmt"
	"log"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/memory"
)

// One subscription is paused while the broker keeps running, then
// started again. Stop returns once the handlers in flight have finished
// and their messages are settled. On Kafka (with a group) and JetStream
// (with a durable consumer) what was published meanwhile is delivered
// after Start; the memory transport, like core NATS, stores nothing.
func ExampleSubscription() {
	tr, err := memory.New()
	if err != nil {
		log.Fatal(err)
	}
	b := broker.New(tr)
	got := make(chan string, 1)
	if err := b.Subscribe("reports", func(_ context.Context, m *broker.Message) error {
		got <- string(m.Body)
		return nil
	}, broker.Group("reporting")); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer b.Close(ctx)

	reports, err := b.Subscription("reports")
	if err != nil {
		log.Fatal(err)
	}
	if err := reports.Stop(ctx); err != nil { // e.g. while a database is migrated
		log.Fatal(err)
	}
	if err := reports.Start(ctx); err != nil {
		log.Fatal(err)
	}
	if err := b.Publish(ctx, &broker.Message{Destination: "reports", Body: []byte("daily")}); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-got)
	// Output: daily
}
