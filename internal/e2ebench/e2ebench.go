// Package e2ebench holds what the end-to-end benchmarks of the transports
// share: the variants they compare in one run, the OpenTelemetry SDK a
// traced variant runs with, the hand-written instrumentation that is the
// baseline for tracebus's telemetry, and the loop that keeps a bounded
// number of messages in flight and reports messages per second and CPU per
// message.
//
//	go test -run '^$' -bench EndToEnd -benchmem -count 5 ./broker/natsbroker ./broker/kafkabroker
package e2ebench

import (
	"context"
	"runtime"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/middleware"
)

// The variants every end-to-end benchmark runs, in this order.
const (
	// Raw is the client library alone.
	Raw = "raw"
	// Untraced is a tracebus broker without middleware.
	Untraced = "untraced"
	// Traced is the telemetry middleware with the SDK, sampling every
	// trace (AlwaysOn, a batch span processor exporting nowhere, metrics
	// aggregated by a manual reader).
	Traced = "traced"
	// Traced1Pct is Traced with ParentBased(TraceIDRatioBased(0.01)).
	Traced1Pct = "traced-1pct"
	// Hand is the client library with Hand's instrumentation and the
	// SDK of Traced.
	Hand = "hand"
)

// Variants lists the variants in the order benchmarks run them.
var Variants = []string{Raw, Untraced, Traced, Traced1Pct, Hand}

// Body is the 1 KiB payload of every message.
var Body = make([]byte, 1024)

// SDK is the OpenTelemetry SDK a traced variant runs with.
type SDK struct {
	TracerProvider *sdktrace.TracerProvider
	MeterProvider  *sdkmetric.MeterProvider
	Propagator     propagation.TextMapPropagator
}

// NewSDK returns an SDK sampling ratio of the traces (every one at 1),
// shut down when b ends.
func NewSDK(b testing.TB, ratio float64) SDK {
	sampler := sdktrace.AlwaysSample()
	if ratio < 1 {
		sampler = sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler),
		sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	return SDK{tp, mp, propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})}
}

// BrokerOptions returns the broker options of a tracebus variant: none for
// Untraced, the telemetry middleware with its SDK for the traced ones, with
// opts added.
func BrokerOptions(b testing.TB, variant string, opts ...middleware.Option) []broker.Option {
	ratio := 1.0
	switch variant {
	case Traced:
	case Traced1Pct:
		ratio = 0.01
	default:
		return nil
	}
	sdk := NewSDK(b, ratio)
	opts = append([]middleware.Option{middleware.WithTracerProvider(sdk.TracerProvider),
		middleware.WithMeterProvider(sdk.MeterProvider), middleware.WithPropagators(sdk.Propagator)}, opts...)
	return []broker.Option{broker.WithMiddleware(middleware.NewTelemetry(opts...))}
}

// Instrumentation is what a careful user writes around a raw client with
// the OpenTelemetry API: a send span, injection, extraction, a process
// span, the duration histograms and the message counters, with names,
// attributes and attribute sets made once.
type Instrumentation struct {
	tracer    trace.Tracer
	prop      propagation.TextMapPropagator
	opDur     metric.Float64Histogram
	procDur   metric.Float64Histogram
	sent      metric.Int64Counter
	consumed  metric.Int64Counter
	sendName  string
	procName  string
	sendAttrs trace.SpanStartOption
	procAttrs trace.SpanStartOption
	sendSet   metric.MeasurementOption
	procSet   metric.MeasurementOption
}

// NewInstrumentation returns the instrumentation of one destination of a
// messaging system, with a new SDK sampling every trace.
func NewInstrumentation(b testing.TB, system, destination string) *Instrumentation {
	sdk := NewSDK(b, 1)
	meter := sdk.MeterProvider.Meter("hand")
	h := &Instrumentation{tracer: sdk.TracerProvider.Tracer("hand"), prop: sdk.Propagator,
		sendName: "send " + destination, procName: "process " + destination}
	h.opDur, _ = meter.Float64Histogram("messaging.client.operation.duration", metric.WithUnit("s"))
	h.procDur, _ = meter.Float64Histogram("messaging.process.duration", metric.WithUnit("s"))
	h.sent, _ = meter.Int64Counter("messaging.client.sent.messages")
	h.consumed, _ = meter.Int64Counter("messaging.client.consumed.messages")
	base := []attribute.KeyValue{semconv.MessagingSystemKey.String(system), semconv.MessagingDestinationName(destination)}
	send := append(append([]attribute.KeyValue(nil), base...), semconv.MessagingOperationName("send"), semconv.MessagingOperationTypeSend)
	proc := append(append([]attribute.KeyValue(nil), base...), semconv.MessagingOperationName("process"), semconv.MessagingOperationTypeProcess)
	h.sendAttrs, h.procAttrs = trace.WithAttributes(send...), trace.WithAttributes(proc...)
	h.sendSet = metric.WithAttributeSet(attribute.NewSet(send...))
	h.procSet = metric.WithAttributeSet(attribute.NewSet(proc...))
	return h
}

var (
	producer = trace.WithSpanKind(trace.SpanKindProducer)
	consumer = trace.WithSpanKind(trace.SpanKindConsumer)
)

// Publish traces send, which sends n messages, after injecting the send
// span's context into each carrier.
func (h *Instrumentation) Publish(ctx context.Context, carriers []propagation.TextMapCarrier, send func() error) error {
	start := time.Now()
	ctx, span := h.tracer.Start(ctx, h.sendName, producer, h.sendAttrs)
	for _, c := range carriers {
		h.prop.Inject(ctx, c)
	}
	err := send()
	span.End()
	h.opDur.Record(ctx, time.Since(start).Seconds(), h.sendSet)
	h.sent.Add(ctx, int64(len(carriers)), h.sendSet)
	return err
}

// Consume traces the processing of a message of size bytes that carries
// its creation context in c.
func (h *Instrumentation) Consume(c propagation.TextMapCarrier, size int) {
	start := time.Now()
	ctx := h.prop.Extract(context.Background(), c)
	ctx, span := h.tracer.Start(ctx, h.procName, consumer, h.procAttrs)
	if span.IsRecording() {
		span.SetAttributes(semconv.MessagingMessageBodySize(size))
	}
	span.End()
	h.procDur.Record(ctx, time.Since(start).Seconds(), h.procSet)
	h.consumed.Add(ctx, 1, h.procSet)
}

// Window bounds the messages in flight: a publisher takes a slot per
// message (Take), a handler gives it back (Done), so a fast publisher
// cannot outrun a consumer that drops or buffers without end.
type Window chan struct{}

// NewWindow returns a window of n messages.
func NewWindow(n int) Window { return make(Window, n) }

// Take waits for a free slot.
func (w Window) Take() { w <- struct{}{} }

// Done frees a slot: one message was handled.
func (w Window) Done() { <-w }

// Run publishes b.N messages with publish, one per call, and waits until
// every one was handled (w empty), reporting msgs/s and cpu-ns/msg: the
// process's CPU time (getrusage), which includes the in-process server,
// the same for every variant, and which is steadier than wall time on a
// loaded machine. flush, when not nil, runs after the last publish, for
// publishers that batch.
//
// Before measuring, one message is published and awaited, so that joining
// a consumer group or creating a consumer is not measured.
func Run(b *testing.B, w Window, publish func() error, flush func() error) {
	run(b, w, len(Body), 1, publish, flush)
}

// run is Run for messages of size bytes, warming up with warm messages.
func run(b *testing.B, w Window, size, warm int, publish func() error, flush func() error) {
	send := func() {
		w.Take()
		if err := publish(); err != nil {
			b.Fatal(err)
		}
	}
	finish := func() {
		if flush != nil {
			if err := flush(); err != nil {
				b.Fatal(err)
			}
		}
		w.drain()
	}
	for range warm {
		send()
	}
	finish()
	// Start without the garbage of the set-up or of an earlier variant,
	// whose collection would be charged to this one's CPU.
	runtime.GC()

	b.ReportAllocs()
	b.SetBytes(int64(size))
	cpu0 := CPUTime()
	start := time.Now()
	b.ResetTimer()
	for b.Loop() {
		send()
	}
	finish()
	b.StopTimer()
	elapsed, cpu := time.Since(start), CPUTime()-cpu0
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/msg")
}

// Batch collects what a batching publisher sends, size at a time.
type Batch[T any] struct {
	items []T
	send  func([]T) error
}

// NewBatch returns a batch that calls send with every size items, and
// with the rest on Flush.
func NewBatch[T any](size int, send func([]T) error) *Batch[T] {
	return &Batch[T]{items: make([]T, 0, size), send: send}
}

// Add adds v and sends the batch once it is full.
func (b *Batch[T]) Add(v T) error {
	b.items = append(b.items, v)
	if len(b.items) < cap(b.items) {
		return nil
	}
	return b.Flush()
}

// Flush sends what the batch holds, if anything.
func (b *Batch[T]) Flush() error {
	if len(b.items) == 0 {
		return nil
	}
	err := b.send(b.items)
	b.items = b.items[:0]
	return err
}

// drain waits until every message in flight was handled.
func (w Window) drain() {
	for range cap(w) {
		w.Take()
	}
	for range cap(w) {
		w.Done()
	}
}

// CPUTime returns the user and system CPU time the process has used.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
