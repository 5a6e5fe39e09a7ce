package broker_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/testutil"
)

// BenchmarkTypedPath compares a typed publish and consume with the byte
// path doing the same JSON work by hand, on the memory transport, so the
// difference is the typed layer's own cost:
//
//	go test -run '^$' -bench TypedPath -benchmem ./broker
func BenchmarkTypedPath(b *testing.B) {
	order := Order{ID: "A-1", Customer: "ada", Total: 42}
	ctx := context.Background()
	run := func(b *testing.B, setup func(bk *broker.Broker, done chan<- struct{}) func() error) {
		bk := broker.New(testutil.Memory(b))
		done := make(chan struct{}, 1024)
		publish := setup(bk, done)
		if err := bk.Start(ctx); err != nil {
			b.Fatal(err)
		}
		defer bk.Close(ctx)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if err := publish(); err != nil {
				b.Fatal(err)
			}
			<-done
		}
	}
	b.Run("bytes+json", func(b *testing.B) {
		run(b, func(bk *broker.Broker, done chan<- struct{}) func() error {
			bk.Subscribe("orders", func(_ context.Context, m *broker.Message) error {
				var o Order
				if err := json.Unmarshal(m.Body, &o); err != nil {
					return broker.Permanent(err)
				}
				if err := o.Validate(); err != nil {
					return broker.Permanent(err)
				}
				done <- struct{}{}
				return nil
			})
			return func() error {
				body, err := json.Marshal(order)
				if err != nil {
					return err
				}
				m := &broker.Message{Destination: "orders", Body: body}
				m.Headers.Set(broker.HeaderContentType, "application/json")
				return bk.Publish(ctx, m)
			}
		})
	})
	b.Run("typed", func(b *testing.B) {
		run(b, func(bk *broker.Broker, done chan<- struct{}) func() error {
			broker.Handle(bk, "orders", func(context.Context, Order) error {
				done <- struct{}{}
				return nil
			})
			pub := broker.Must(broker.NewPublisher[Order](bk, "orders"))
			return func() error { return pub.Publish(ctx, order) }
		})
	})
}
