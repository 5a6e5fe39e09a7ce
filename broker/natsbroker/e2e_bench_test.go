package natsbroker_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// BenchmarkEndToEnd measures a 1 KiB message's way from publish to a
// handler that has finished with it, on an embedded nats-server, for five
// variants in the same run:
//
//   - raw: nats.go alone (PublishMsg, a subscription callback; JetStream:
//     Publish and a pull Consume with acks);
//   - untraced: a tracebus broker without middleware;
//   - traced: the telemetry middleware with the SDK (AlwaysOn, batch span
//     processor exporting nowhere, metrics aggregated);
//   - traced-1pct: the same with ParentBased(TraceIDRatioBased(0.01));
//   - hand: what a careful user writes around raw nats.go with the same SDK:
//     a send span, injection, extraction, a process span, a duration
//     histogram and a message counter.
//
// At most window messages are in flight, so a fast publisher cannot drop
// messages on a core subscription. Besides ns/op it reports msgs/s and
// cpu-ns/msg (process CPU from getrusage, which includes the embedded
// server, the same for every variant).
//
//	go test -run '^$' -bench EndToEnd -benchmem -count 7 ./broker/natsbroker
func BenchmarkEndToEnd(b *testing.B) {
	srv := natstest.Start(b)
	for _, js := range []bool{false, true} {
		mode := "core"
		if js {
			mode = "jetstream"
		}
		for _, v := range []string{"raw", "untraced", "traced", "traced-1pct", "hand"} {
			b.Run(mode+"/"+v, func(b *testing.B) { benchE2E(b, srv, js, v) })
		}
	}
}

const e2eWindow = 256

var e2eBody = make([]byte, 1024)

// e2eSDK is the SDK a traced variant runs with.
type e2eSDK struct {
	tp   *sdktrace.TracerProvider
	mp   *sdkmetric.MeterProvider
	prop propagation.TextMapPropagator
}

func newE2ESDK(b *testing.B, ratio float64) e2eSDK {
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
	return e2eSDK{tp, mp, propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})}
}

func benchE2E(b *testing.B, srv *natstest.Server, js bool, variant string) {
	ctx := context.Background()
	subject := "e2e." + variant
	if js {
		subject = "e2ejs." + variant
		jsc, err := jetstream.New(srv.Connect(b))
		if err != nil {
			b.Fatal(err)
		}
		name := "E2E_" + map[string]string{"raw": "RAW", "untraced": "UNTRACED", "traced": "TRACED", "traced-1pct": "SAMPLED", "hand": "HAND"}[variant]
		_ = jsc.DeleteStream(ctx, name)
		if _, err := jsc.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subject}, Storage: jetstream.MemoryStorage}); err != nil {
			b.Fatal(err)
		}
	}
	window := make(chan struct{}, e2eWindow)
	done := func() { <-window }

	var publish func() error
	switch variant {
	case "raw", "hand":
		var sdk e2eSDK
		var h *handInstr
		if variant == "hand" {
			sdk = newE2ESDK(b, 1)
			h = newHandInstr(sdk, subject)
		}
		publish = rawE2E(b, srv, js, subject, h, done)
	default:
		var opts []broker.Option
		switch variant {
		case "traced":
			sdk := newE2ESDK(b, 1)
			opts = append(opts, broker.WithMiddleware(middleware.NewTelemetry(middleware.WithTracerProvider(sdk.tp),
				middleware.WithMeterProvider(sdk.mp), middleware.WithPropagators(sdk.prop))))
		case "traced-1pct":
			sdk := newE2ESDK(b, 0.01)
			opts = append(opts, broker.WithMiddleware(middleware.NewTelemetry(middleware.WithTracerProvider(sdk.tp),
				middleware.WithMeterProvider(sdk.mp), middleware.WithPropagators(sdk.prop))))
		}
		var topts []natsbroker.Option
		if js {
			topts = append(topts, natsbroker.WithJetStream(subject))
		}
		tr, err := natsbroker.Connect(srv.URL(), topts...)
		if err != nil {
			b.Fatal(err)
		}
		br := broker.New(tr, opts...)
		b.Cleanup(func() { _ = br.Close(ctx) })
		if err := br.Subscribe(subject, func(context.Context, *broker.Message) error {
			done()
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		if err := br.Start(ctx); err != nil {
			b.Fatal(err)
		}
		publish = func() error {
			return br.Publish(ctx, &broker.Message{Destination: subject, Body: e2eBody})
		}
	}

	b.ReportAllocs()
	b.SetBytes(int64(len(e2eBody)))
	cpu0 := cpuTime()
	start := time.Now()
	b.ResetTimer()
	for b.Loop() {
		window <- struct{}{}
		if err := publish(); err != nil {
			b.Fatal(err)
		}
	}
	for range e2eWindow {
		window <- struct{}{} // every message handled
	}
	b.StopTimer()
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/msg")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rawE2E wires the raw nats.go variant, instrumented by h when it is not
// nil, and returns its publish function.
func rawE2E(b *testing.B, srv *natstest.Server, js bool, subject string, h *handInstr, done func()) func() error {
	ctx := context.Background()
	pub, sub := srv.Connect(b), srv.Connect(b)
	if !js {
		s, err := sub.Subscribe(subject, func(m *natsgo.Msg) {
			if h != nil {
				h.consume(m.Header, len(m.Data))
			}
			done()
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Unsubscribe() })
		if err := sub.Flush(); err != nil {
			b.Fatal(err)
		}
		return func() error {
			m := &natsgo.Msg{Subject: subject, Data: e2eBody, Header: natsgo.Header{}}
			if h == nil {
				return pub.PublishMsg(m)
			}
			return h.publish(ctx, m.Header, func() error { return pub.PublishMsg(m) })
		}
	}
	jsPub, err := jetstream.New(pub)
	if err != nil {
		b.Fatal(err)
	}
	jsSub, err := jetstream.New(sub)
	if err != nil {
		b.Fatal(err)
	}
	cons, err := jsSub.CreateConsumer(ctx, streamOf(b, jsSub, subject), jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		b.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if h != nil {
			h.consume(m.Headers(), len(m.Data()))
		}
		_ = m.Ack()
		done()
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cc.Stop)
	return func() error {
		m := &natsgo.Msg{Subject: subject, Data: e2eBody, Header: natsgo.Header{}}
		if h == nil {
			_, err := jsPub.PublishMsg(ctx, m)
			return err
		}
		return h.publish(ctx, m.Header, func() error { _, err := jsPub.PublishMsg(ctx, m); return err })
	}
}

func streamOf(b *testing.B, js jetstream.JetStream, subject string) string {
	name, err := js.StreamNameBySubject(context.Background(), subject)
	if err != nil {
		b.Fatal(err)
	}
	return name
}

// handInstr is a hand-written instrumentation of raw nats.go with the
// OpenTelemetry API: what a careful user writes without tracebus.
type handInstr struct {
	tracer    trace.Tracer
	prop      propagation.TextMapPropagator
	opDur     metric.Float64Histogram
	procDur   metric.Float64Histogram
	sent      metric.Int64Counter
	consumed  metric.Int64Counter
	sendName  string
	procName  string
	sendAttrs []attribute.KeyValue
	procAttrs []attribute.KeyValue
	sendSet   metric.MeasurementOption
	procSet   metric.MeasurementOption
}

func newHandInstr(sdk e2eSDK, subject string) *handInstr {
	meter := sdk.mp.Meter("hand")
	h := &handInstr{tracer: sdk.tp.Tracer("hand"), prop: sdk.prop, sendName: "send " + subject, procName: "process " + subject}
	h.opDur, _ = meter.Float64Histogram("messaging.client.operation.duration", metric.WithUnit("s"))
	h.procDur, _ = meter.Float64Histogram("messaging.process.duration", metric.WithUnit("s"))
	h.sent, _ = meter.Int64Counter("messaging.client.sent.messages")
	h.consumed, _ = meter.Int64Counter("messaging.client.consumed.messages")
	base := []attribute.KeyValue{semconv.MessagingSystemKey.String("nats"), semconv.MessagingDestinationName(subject)}
	h.sendAttrs = append(append([]attribute.KeyValue(nil), base...), semconv.MessagingOperationName("send"), semconv.MessagingOperationTypeSend)
	h.procAttrs = append(append([]attribute.KeyValue(nil), base...), semconv.MessagingOperationName("process"), semconv.MessagingOperationTypeProcess)
	h.sendSet = metric.WithAttributeSet(attribute.NewSet(h.sendAttrs...))
	h.procSet = metric.WithAttributeSet(attribute.NewSet(h.procAttrs...))
	return h
}

func (h *handInstr) publish(ctx context.Context, hdr natsgo.Header, send func() error) error {
	start := time.Now()
	ctx, span := h.tracer.Start(ctx, h.sendName, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(h.sendAttrs...))
	h.prop.Inject(ctx, propagation.HeaderCarrier(hdr))
	err := send()
	span.End()
	h.opDur.Record(ctx, time.Since(start).Seconds(), h.sendSet)
	h.sent.Add(ctx, 1, h.sendSet)
	return err
}

func (h *handInstr) consume(hdr natsgo.Header, size int) {
	start := time.Now()
	ctx := h.prop.Extract(context.Background(), propagation.HeaderCarrier(hdr))
	ctx, span := h.tracer.Start(ctx, h.procName, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(h.procAttrs...), trace.WithAttributes(semconv.MessagingMessageBodySize(size)))
	span.End()
	h.procDur.Record(ctx, time.Since(start).Seconds(), h.procSet)
	h.consumed.Add(ctx, 1, h.procSet)
}
