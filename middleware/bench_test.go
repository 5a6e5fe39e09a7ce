package middleware_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	nooptrace "go.opentelemetry.io/otel/trace/noop"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
)

// The benchmarks compare, in one run, the raw memory transport, a broker
// without middleware and brokers with the Telemetry middleware: with the
// real SDK (every span sampled and recorded, metrics aggregated; only
// export is left out) and with no-op providers.
//
//	go test -run '^$' -bench . -benchmem ./middleware

func sdkTelemetry() *middleware.Telemetry {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	return middleware.NewTelemetry(middleware.WithTracerProvider(tp), middleware.WithMeterProvider(mp), middleware.WithPropagators(w3c))
}

func noopTelemetry() *middleware.Telemetry {
	return middleware.NewTelemetry(middleware.WithTracerProvider(nooptrace.NewTracerProvider()),
		middleware.WithMeterProvider(noop.NewMeterProvider()), middleware.WithPropagators(w3c))
}

type variant struct {
	name string
	mws  func() []driver.Middleware
}

var variants = []variant{
	{"broker", func() []driver.Middleware { return nil }},
	{"telemetry-sdk", func() []driver.Middleware { return []driver.Middleware{sdkTelemetry()} }},
	{"telemetry-noop", func() []driver.Middleware { return []driver.Middleware{noopTelemetry()} }},
}

var body = []byte(`{"order":1234,"customer":"c-77","total":"12.50"}`)

// BenchmarkPublish measures one Publish without subscribers.
func BenchmarkPublish(b *testing.B) {
	ctx := context.Background()
	b.Run("raw", func(b *testing.B) {
		tr := testutil.Memory(b)
		b.ReportAllocs()
		for b.Loop() {
			if err := tr.Publish(ctx, []*broker.Message{{Destination: "orders", Body: body}}); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			br := broker.New(testutil.Memory(b), broker.WithMiddleware(v.mws()...))
			defer br.Close(ctx)
			b.ReportAllocs()
			for b.Loop() {
				if err := br.Publish(ctx, &broker.Message{Destination: "orders", Body: body}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPublishConsume measures a message's way from Publish through a
// handler to its acknowledgement: b.N messages are published and the
// benchmark ends when all were handled.
func BenchmarkPublishConsume(b *testing.B) {
	ctx := context.Background()
	b.Run("raw", func(b *testing.B) {
		tr := testutil.Memory(b)
		var n atomic.Int64
		done := make(chan struct{}, 1)
		target := int64(0)
		sub, err := tr.Subscribe(ctx, driver.SubscriptionSpec{Destination: "orders", Concurrency: 1},
			func(ctx context.Context, msgs []*broker.Message, ack driver.Acknowledger) {
				_ = ack.Ack(ctx)
				if n.Add(int64(len(msgs))) == atomic.LoadInt64(&target) {
					done <- struct{}{}
				}
			})
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Close(ctx)
		b.ReportAllocs()
		atomic.StoreInt64(&target, int64(b.N))
		b.ResetTimer()
		for range b.N {
			if err := tr.Publish(ctx, []*broker.Message{{Destination: "orders", Body: body}}); err != nil {
				b.Fatal(err)
			}
		}
		wait(b, done)
	})
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			br := broker.New(testutil.Memory(b), broker.WithMiddleware(v.mws()...))
			defer br.Close(ctx)
			var n atomic.Int64
			done := make(chan struct{}, 1)
			target := int64(b.N)
			if err := br.Subscribe("orders", func(context.Context, *broker.Message) error {
				if n.Add(1) == target {
					done <- struct{}{}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			if err := br.Start(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := br.Publish(ctx, &broker.Message{Destination: "orders", Body: body}); err != nil {
					b.Fatal(err)
				}
			}
			wait(b, done)
		})
	}
}

// BenchmarkPublishBatch measures a batch of 10 messages published at once.
func BenchmarkPublishBatch(b *testing.B) {
	ctx := context.Background()
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			br := broker.New(testutil.Memory(b), broker.WithMiddleware(v.mws()...))
			defer br.Close(ctx)
			b.ReportAllocs()
			for b.Loop() {
				msgs := make([]*broker.Message, 10)
				for i := range msgs {
					msgs[i] = &broker.Message{Destination: "orders", Body: body}
				}
				if err := br.PublishBatch(ctx, msgs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func wait(b *testing.B, done <-chan struct{}) {
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatal("messages not handled within a minute")
	}
}
