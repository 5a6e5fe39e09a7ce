package memory_test

import (
	"context"
	"fmt"
	"log"
	"sync"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/memory"
)

// Two services connected to one in-process server share a queue group: each
// message reaches one of them.
func ExampleServer() {
	srv := memory.NewServer()
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Add(4)
	var mu sync.Mutex
	handled := 0
	for range 2 {
		tr, err := memory.New(memory.WithServer(srv))
		if err != nil {
			log.Fatal(err)
		}
		b := broker.New(tr)
		_ = b.Subscribe("emails", func(ctx context.Context, msg *broker.Message) error {
			mu.Lock()
			handled++
			mu.Unlock()
			wg.Done()
			return nil
		}, broker.Group("mailers"))
		_ = b.Start(ctx)
		defer b.Close(ctx)
	}

	ptr, err := memory.New(memory.WithServer(srv))
	if err != nil {
		log.Fatal(err)
	}
	publisher := broker.New(ptr)
	defer publisher.Close(ctx)
	for i := range 4 {
		_ = publisher.Publish(ctx, &broker.Message{Destination: "emails", Body: fmt.Appendf(nil, "mail %d", i)})
	}
	wg.Wait()
	fmt.Println("handled", handled)
	// Output: handled 4
}

// On a synchronous, recording server Publish returns once the handlers are
// done, including the handlers of what they published, and every message
// published can be read back, matched or not.
func ExampleWithSyncDelivery() {
	srv := memory.NewServer(memory.WithSyncDelivery(), memory.WithRecording())
	ctx := context.Background()
	tr, err := memory.New(memory.WithServer(srv))
	if err != nil {
		log.Fatal(err)
	}
	b := broker.New(tr)
	_ = b.Subscribe("orders", func(ctx context.Context, msg *broker.Message) error {
		fmt.Printf("order %s\n", msg.Body)
		return b.Publish(ctx, &broker.Message{Destination: "invoices", Body: msg.Body})
	})
	_ = b.Start(ctx)
	defer b.Close(ctx)

	_ = b.Publish(ctx, &broker.Message{Destination: "orders", Body: []byte("42")})
	for _, m := range srv.Published() {
		fmt.Printf("published to %s: %s\n", m.Destination, m.Body)
	}
	// Output:
	// order 42
	// published to orders: 42
	// published to invoices: 42
}
