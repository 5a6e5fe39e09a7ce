package middleware_test

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
)

// seenSampler records what a sampler is given and samples when sample
// is set.
type seenSampler struct {
	sample bool
	mu     sync.Mutex
	names  []string
	attrs  [][]attribute.KeyValue
}

func (s *seenSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	s.mu.Lock()
	s.names = append(s.names, p.Name)
	s.attrs = append(s.attrs, append([]attribute.KeyValue(nil), p.Attributes...))
	s.mu.Unlock()
	decision := sdktrace.Drop
	if s.sample {
		decision = sdktrace.RecordAndSample
	}
	return sdktrace.SamplingResult{Decision: decision, Tracestate: trace.SpanContextFromContext(p.ParentContext).TraceState()}
}

func (s *seenSampler) Description() string { return "seen" }

// TestSamplerSeesStartAttributes checks the split made for unsampled
// messages: the sampler gets the attributes the semantic conventions name
// for sampling, a message's own facts come only on recorded spans, and an
// unsampled message still carries its context and is counted.
func TestSamplerSeesStartAttributes(t *testing.T) {
	for _, sample := range []bool{false, true} {
		t.Run("sample="+strconv.FormatBool(sample), func(t *testing.T) {
			sampler := &seenSampler{sample: sample}
			spans := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSpanProcessor(spans))
			rec := testutil.NewRecorder(t)
			tel := middleware.NewTelemetry(middleware.WithTracerProvider(tp),
				middleware.WithMeterProvider(rec.MeterProvider), middleware.WithPropagators(w3c))

			pub := driver.Operation{Kind: driver.OpPublish, System: "nats", Destination: "orders.eu"}
			m := &broker.Message{Destination: "orders.eu", ID: "m-1", Body: []byte("x")}
			if err := tel.WrapPublish(ok)(context.Background(), pub, []*broker.Message{m}); err != nil {
				t.Fatal(err)
			}
			if m.Headers.Get("traceparent") == "" {
				t.Fatal("the message carries no traceparent")
			}
			m.Delivery.DeliveryCount = 2
			sub := driver.Operation{Kind: driver.OpConsume, System: "nats", Destination: "orders.*"}
			if err := tel.WrapConsume(ok)(context.Background(), sub, []*broker.Message{m}); err != nil {
				t.Fatal(err)
			}

			if want := []string{"send orders.eu", "process orders.*"}; len(sampler.names) != 2 ||
				sampler.names[0] != want[0] || sampler.names[1] != want[1] {
				t.Fatalf("sampler saw %q, want %q", sampler.names, want)
			}
			wantAttrs(t, "send at start", sampler.attrs[0], []attribute.KeyValue{
				semconv.MessagingSystemKey.String("nats"), semconv.MessagingOperationName("send"),
				semconv.MessagingOperationTypeSend, semconv.MessagingDestinationName("orders.eu"),
			}, semconv.MessagingMessageIDKey)
			wantAttrs(t, "process at start", sampler.attrs[1], []attribute.KeyValue{
				semconv.MessagingOperationName("process"), semconv.MessagingOperationTypeProcess,
				semconv.MessagingDestinationName("orders.eu"), semconv.MessagingDestinationTemplate("orders.*"),
			}, semconv.MessagingMessageIDKey, attribute.Key("tracebus.delivery.attempt"))

			ended := spans.Ended()
			if !sample {
				if len(ended) != 0 {
					t.Errorf("%d spans recorded without sampling", len(ended))
				}
			} else {
				if len(ended) != 2 {
					t.Fatalf("%d spans recorded, want 2", len(ended))
				}
				wantAttrs(t, "send", ended[0].Attributes(), []attribute.KeyValue{
					semconv.MessagingDestinationName("orders.eu"), semconv.MessagingMessageID("m-1")})
				wantAttrs(t, "process", ended[1].Attributes(), []attribute.KeyValue{
					semconv.MessagingDestinationTemplate("orders.*"), semconv.MessagingMessageID("m-1"),
					attribute.Key("tracebus.delivery.attempt").Int(2)})
			}
			for _, name := range []string{"messaging.client.sent.messages", "messaging.client.consumed.messages"} {
				total := int64(0)
				for _, n := range points(t, rec, name) {
					total += n
				}
				if total != 1 {
					t.Errorf("%s = %d, want 1", name, total)
				}
			}
		})
	}
}

// TestManyDestinations publishes to more destinations than the per-operation
// cache holds: every span still gets its own destination's name.
func TestManyDestinations(t *testing.T) {
	tel, rec := newTel(t)
	publish := tel.WrapPublish(ok)
	const n = 1100 // past the cache's bound of 1024
	for i := range 2 * n {
		dest := "d" + strconv.Itoa(i%n) // the second round finds most in the cache
		op := driver.Operation{Kind: driver.OpPublish, System: "nats", Destination: dest}
		if err := publish(context.Background(), op, []*broker.Message{{Destination: dest}}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for _, s := range rec.Spans() {
		want := "send " + attrMap(s.Attributes())[semconv.MessagingDestinationNameKey].AsString()
		if s.Name() != want {
			t.Fatalf("span %q, want %q", s.Name(), want)
		}
		seen[s.Name()] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct spans, want %d", len(seen), n)
	}
}
