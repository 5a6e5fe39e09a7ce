package middleware_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
)

// A receive the transport failed has no message: its CLIENT span, child
// of the caller's, starts when the wait began and carries the error; the
// operation duration has the error type and the receive type; nothing is
// counted as consumed.
func TestReceiveFailed(t *testing.T) {
	tel, rec := newTel(t)
	ctx, caller := rec.TracerProvider.Tracer("test").Start(context.Background(), "caller")
	start := time.Now().Add(-time.Second)
	op := driver.Operation{Kind: driver.OpReceive, System: "nats", Destination: "jobs", Group: "workers", Start: start}
	boom := errors.New("server went away")
	err := tel.WrapConsume(func(context.Context, driver.Operation, []*broker.Message) error { return boom })(ctx, op, nil)
	caller.End()
	if !errors.Is(err, boom) {
		t.Fatalf("receive returned %v, want the transport's error", err)
	}
	span := rec.SpanByName(t, "receive jobs")
	if span.SpanKind() != trace.SpanKindClient {
		t.Errorf("kind %v, want client", span.SpanKind())
	}
	if span.Parent().SpanID() != caller.SpanContext().SpanID() {
		t.Errorf("parent %s, want the caller's span", span.Parent().SpanID())
	}
	if !span.StartTime().Equal(start) {
		t.Errorf("starts at %v, want when the wait began, %v", span.StartTime(), start)
	}
	if span.Status().Code != codes.Error || len(span.Links()) != 0 {
		t.Errorf("status %v, %d links; want an error and no link", span.Status(), len(span.Links()))
	}
	wantAttrs(t, "receive span", span.Attributes(), []attribute.KeyValue{
		semconv.MessagingSystemKey.String("nats"),
		semconv.MessagingOperationName("receive"),
		semconv.MessagingOperationTypeReceive,
		semconv.MessagingDestinationName("jobs"),
		semconv.MessagingConsumerGroupName("workers"),
		semconv.ErrorTypeKey.String("_OTHER"),
	}, semconv.MessagingBatchMessageCountKey, semconv.MessagingMessageIDKey)

	if _, found := rec.Metric(t, "messaging.client.consumed.messages"); found {
		t.Error("a failed receive counted consumed messages")
	}
	m, found := rec.Metric(t, "messaging.client.operation.duration")
	if !found {
		t.Fatal("no operation duration")
	}
	pts := m.Data.(metricdata.Histogram[float64]).DataPoints
	if len(pts) != 1 || pts[0].Count != 1 {
		t.Fatalf("operation duration points %+v, want one recording", pts)
	}
	typ, _ := pts[0].Attributes.Value(semconv.MessagingOperationTypeKey)
	et, _ := pts[0].Attributes.Value(semconv.ErrorTypeKey)
	if typ.AsString() != "receive" || et.AsString() != "_OTHER" {
		t.Errorf("point type %q error %q, want receive and _OTHER", typ.AsString(), et.AsString())
	}
	if pts[0].Sum < 1 {
		t.Errorf("duration %vs, want it measured from when the wait began (a second ago)", pts[0].Sum)
	}
}

// A system's own name for a receive names the span: Kafka's "poll".
func TestReceiveOperationName(t *testing.T) {
	tel, rec := newTel(t)
	op := driver.Operation{Kind: driver.OpReceive, System: "kafka", Destination: "jobs", OperationName: "poll", Start: time.Now()}
	m := &broker.Message{Destination: "jobs", ID: "m-1"}
	if err := tel.WrapConsume(ok)(context.Background(), op, []*broker.Message{m}); err != nil {
		t.Fatal(err)
	}
	span := rec.SpanByName(t, "poll jobs")
	wantAttrs(t, "poll span", span.Attributes(), []attribute.KeyValue{
		semconv.MessagingOperationName("poll"),
		semconv.MessagingOperationTypeReceive,
		semconv.MessagingMessageID("m-1"),
	})
}
