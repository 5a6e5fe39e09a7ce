package middleware_test

import (
	"context"
	"fmt"
	"log"

	"go.opentelemetry.io/contrib/propagators/autoprop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/memory"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
)

// tracing returns a TracerProvider that keeps every ended span in memory,
// standing in for an exporter to Jaeger or Tempo.
func tracing() (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	return sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)), rec
}

// A handler that publishes with its own ctx continues the trace: every
// hop's process span is a child of that hop's send span.
func Example() {
	tp, spans := tracing()
	tel := middleware.NewTelemetry(middleware.WithTracerProvider(tp))
	tr, err := memory.New()
	if err != nil {
		log.Fatal(err)
	}
	b := broker.New(tr, broker.WithMiddleware(tel))

	done := make(chan struct{})
	_ = b.Subscribe("orders", func(ctx context.Context, msg *broker.Message) error {
		return b.Publish(ctx, &broker.Message{Destination: "invoices", Body: msg.Body})
	})
	_ = b.Subscribe("invoices", func(ctx context.Context, msg *broker.Message) error {
		close(done)
		return nil
	})
	ctx := context.Background()
	_ = b.Start(ctx)
	_ = b.Publish(ctx, &broker.Message{Destination: "orders", Body: []byte(`{"id":1}`)})
	<-done
	_ = b.Close(ctx) // waits for the handlers, so every span has ended

	fmt.Print(testutil.Tree(spans.Ended()))
	// Output:
	// send orders (producer)
	//   process orders (consumer)
	//     send invoices (producer)
	//       process invoices (consumer)
}

// Providers and propagator are usually the globals; they can be given
// explicitly. autoprop honours OTEL_PROPAGATORS (tracecontext, baggage, b3,
// jaeger, ...).
func ExampleNewTelemetry() {
	tp, spans := tracing()
	mp := sdkmetric.NewMeterProvider()
	tel := middleware.NewTelemetry(
		middleware.WithTracerProvider(tp),
		middleware.WithMeterProvider(mp),
		middleware.WithPropagators(autoprop.NewTextMapPropagator()),
	)
	tr, err := memory.New()
	if err != nil {
		log.Fatal(err)
	}
	b := broker.New(tr, broker.WithMiddleware(tel))
	ctx := context.Background()
	msg := &broker.Message{Destination: "orders", Body: []byte("hi")}
	_ = b.Publish(ctx, msg)
	_ = b.Close(ctx)

	s := spans.Ended()[0]
	fmt.Println(s.Name(), s.SpanKind())
	fmt.Println("traceparent written:", msg.Headers.Get("traceparent") != "")
	// Output:
	// send orders producer
	// traceparent written: true
}

// A batch publish gets a create span per message, whose context that
// message carries, and one send span linking to all of them.
func ExampleTelemetry_batch() {
	tp, spans := tracing()
	tr, err := memory.New()
	if err != nil {
		log.Fatal(err)
	}
	b := broker.New(tr, broker.WithMiddleware(middleware.NewTelemetry(middleware.WithTracerProvider(tp))))
	ctx, parent := tp.Tracer("example").Start(context.Background(), "checkout")
	_ = b.PublishBatch(ctx, []*broker.Message{
		{Destination: "orders", Body: []byte("1")},
		{Destination: "orders", Body: []byte("2")},
		{Destination: "orders", Body: []byte("3")},
	})
	parent.End()
	_ = b.Close(context.Background())

	fmt.Print(testutil.Tree(spans.Ended()))
	// Output:
	// checkout (internal)
	//   create orders (producer)
	//   create orders (producer)
	//   create orders (producer)
	//   send orders (client) links=3
}

// With WithLinkedProcessSpans each consumer starts a trace of its own that
// links to the producer's, like kotel's LinkSpans.
func ExampleWithLinkedProcessSpans() {
	tp, spans := tracing()
	tel := middleware.NewTelemetry(middleware.WithTracerProvider(tp), middleware.WithLinkedProcessSpans())
	tr, err := memory.New()
	if err != nil {
		log.Fatal(err)
	}
	b := broker.New(tr, broker.WithMiddleware(tel))
	done := make(chan struct{})
	_ = b.Subscribe("orders", func(context.Context, *broker.Message) error { close(done); return nil })
	ctx := context.Background()
	_ = b.Start(ctx)
	_ = b.Publish(ctx, &broker.Message{Destination: "orders"})
	<-done
	_ = b.Close(ctx)

	fmt.Print(testutil.Tree(spans.Ended()))
	// Output:
	// send orders (producer)
	// process orders (consumer) links=1
}
