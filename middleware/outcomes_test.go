package middleware_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/testutil"
)

type declined struct{}

func (declined) Error() string     { return "card declined" }
func (declined) ErrorType() string { return "declined" }

// processSet is the attribute set messaging.process.duration has for a
// memory subscription to dest, plus more.
func processSet(dest string, more ...attribute.KeyValue) attribute.Distinct {
	kvs := append([]attribute.KeyValue{
		semconv.MessagingSystemKey.String("memory"),
		semconv.MessagingOperationName("process"),
		semconv.MessagingDestinationName(dest),
	}, more...)
	return set(kvs...)
}

// The outcome policy's metrics on the memory transport: a message retried
// twice and dead-lettered, one retried once and dropped, one dropped at
// once for a permanent failure; exact values and attribute sets, the same
// as messaging.process.duration's plus error.type and the drop reason.
func TestOutcomeMetrics(t *testing.T) {
	tel, rec := newTel(t)
	b := broker.New(testutil.Memory(t), broker.WithMiddleware(tel),
		broker.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	fast := broker.RetryBackoff(broker.ConstantBackoff(time.Millisecond))
	dead := testkit.NewInbox[string](30 * time.Second)
	calls := testkit.NewInbox[int](30 * time.Second)
	must(t, b.Subscribe("orders", func(context.Context, *broker.Message) error {
		return declined{}
	}, broker.MaxAttempts(3), fast, broker.DeadLetter("orders.dlq")))
	must(t, b.Subscribe("orders.dlq", func(_ context.Context, m *broker.Message) error {
		dead.Put(string(m.Body))
		return nil
	}))
	must(t, b.Subscribe("payments", func(_ context.Context, m *broker.Message) error {
		calls.Put(m.Delivery.DeliveryCount)
		if string(m.Body) == "bad" {
			return broker.Permanent(errors.New("malformed"))
		}
		return declined{}
	}, broker.MaxAttempts(2), fast, broker.Group("billing")))
	must(t, b.Start(context.Background()))
	ctx := context.Background()
	must(t, b.Publish(ctx, &broker.Message{Destination: "orders", Body: []byte("o-1")}))
	must(t, b.Publish(ctx, &broker.Message{Destination: "payments", Body: []byte("p-1")}))
	if got := dead.Next(t); got != "o-1" {
		t.Fatalf("dead letter %q", got)
	}
	calls.TakeN(t, 2)
	must(t, b.Publish(ctx, &broker.Message{Destination: "payments", Body: []byte("bad")}))
	calls.Next(t)
	// Close waits for every decision.
	must(t, b.Close(ctx))

	declinedType := semconv.ErrorTypeKey.String("declined")
	billing := semconv.MessagingConsumerGroupName("billing")
	for name, want := range map[string]map[attribute.Distinct]int64{
		"tracebus.consumer.retried.messages": {
			processSet("orders", declinedType):            2,
			processSet("payments", billing, declinedType): 1,
		},
		"tracebus.consumer.dead_lettered.messages": {
			processSet("orders", declinedType): 1,
		},
		"tracebus.consumer.dropped.messages": {
			processSet("payments", billing, declinedType, attribute.Key("tracebus.drop.reason").String("failed")):                             1,
			processSet("payments", billing, semconv.ErrorTypeKey.String("permanent"), attribute.Key("tracebus.drop.reason").String("failed")): 1,
		},
		"tracebus.consumer.inflight.messages": {
			processSet("orders"):            0,
			processSet("orders.dlq"):        0,
			processSet("payments", billing): 0,
		},
	} {
		got := points(t, rec, name)
		if len(got) != len(want) {
			t.Errorf("%s: %d points %v, want %d", name, len(got), got, len(want))
		}
		for s, n := range want {
			if v, ok := got[s]; !ok || v != n {
				t.Errorf("%s: a point = %d (present %v), want %d; points %v", name, v, ok, n, got)
			}
		}
	}
	if _, found := rec.Metric(t, "tracebus.consumer.hung.messages"); found {
		t.Errorf("%s recorded on a transport without a handling limit", "tracebus.consumer.hung.messages")
	}
	// The retried messages are the process spans that failed and were not
	// the last attempt: the two metrics agree.
	proc := points(t, rec, "messaging.process.duration")
	if n := proc[processSet("orders", declinedType)]; n != 3 {
		t.Errorf("process.duration of orders with error = %d, want 3 attempts", n)
	}
}

// The in-flight count is up while a handler runs and down after.
func TestInflightMetric(t *testing.T) {
	tel, rec := newTel(t)
	b := broker.New(testutil.Memory(t), broker.WithMiddleware(tel))
	entered := make(chan struct{})
	release := make(chan struct{})
	must(t, b.SubscribeBatch("orders", func(context.Context, []*broker.Message) error {
		entered <- struct{}{}
		<-release
		return nil
	}, broker.Batch(2, time.Hour)))
	must(t, b.Start(context.Background()))
	ctx := context.Background()
	must(t, b.PublishBatch(ctx, []*broker.Message{
		{Destination: "orders", Body: []byte("1")}, {Destination: "orders", Body: []byte("2")},
	}))
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("handler not called")
	}
	if got := points(t, rec, "tracebus.consumer.inflight.messages")[processSet("orders")]; got != 2 {
		t.Errorf("in flight during the batch = %d, want 2", got)
	}
	close(release)
	must(t, b.Close(ctx))
	if got := points(t, rec, "tracebus.consumer.inflight.messages")[processSet("orders")]; got != 0 {
		t.Errorf("in flight after the batch = %d, want 0", got)
	}
}

// Drops reported by the transport are counted with reason slow_consumer,
// the subscription's attributes, and no error.type.
func TestTransportDropMetric(t *testing.T) {
	tel, rec := newTel(t)
	op := driver.Operation{Kind: driver.OpConsume, System: "nats", Destination: "orders.*", Group: "billing",
		ServerAddress: "localhost", ServerPort: 4222}
	observe := tel.ObserveOutcomes(op)
	observe(context.Background(), driver.Outcome{Kind: driver.OutcomeTransportDropped, Messages: 40})
	observe(context.Background(), driver.Outcome{Kind: driver.OutcomeTransportDropped, Messages: 2})
	observe(context.Background(), driver.Outcome{Kind: driver.OutcomeHung, Messages: 1,
		Msgs: []*broker.Message{{Destination: "orders.eu"}}})
	base := []attribute.KeyValue{
		semconv.MessagingSystemKey.String("nats"), semconv.MessagingOperationName("process"),
		semconv.MessagingConsumerGroupName("billing"), semconv.ServerAddress("localhost"), semconv.ServerPort(4222),
	}
	want := set(append(base, semconv.MessagingDestinationName("orders.*"), attribute.Key("tracebus.drop.reason").String("slow_consumer"))...)
	if got := points(t, rec, "tracebus.consumer.dropped.messages"); len(got) != 1 || got[want] != 42 {
		t.Errorf("dropped points %v, want 42 with reason slow_consumer", got)
	}
	// A message from a subject the pattern matched: the template, as on
	// messaging.process.duration.
	want = set(append(base, semconv.MessagingDestinationTemplate("orders.*"))...)
	if got := points(t, rec, "tracebus.consumer.hung.messages"); len(got) != 1 || got[want] != 1 {
		t.Errorf("hung points %v, want 1 with the template", got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
