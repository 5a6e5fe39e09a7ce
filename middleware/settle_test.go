package middleware_test

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/middleware"
)

func settled(context.Context, driver.Operation, []*broker.Message, driver.Settlement) error {
	return nil
}

func TestSettleSpans(t *testing.T) {
	tel, rec := newTel(t, middleware.WithSettleSpans())
	ctx, proc := rec.TracerProvider.Tracer("test").Start(context.Background(), "process orders")
	proc.End()
	op := kafkaConsume("orders", false)
	op.Kind, op.OperationName = driver.OpSettle, "commit"
	msg := delivered("orders", 2, 7, "")
	settle := tel.WrapSettle(settled)
	for _, a := range []driver.SettleAction{driver.Ack, driver.Nak, driver.Term} {
		if err := settle(ctx, op, []*broker.Message{msg}, driver.Settlement{Action: a}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"commit orders", "nak orders", "term orders"} {
		s := rec.SpanByName(t, name)
		if s.SpanKind() != trace.SpanKindClient || s.Parent().SpanID() != proc.SpanContext().SpanID() {
			t.Errorf("%s: kind %s parent %s, want a client child of the process span", name, s.SpanKind(), s.Parent().SpanID())
		}
		wantAttrs(t, name, s.Attributes(), []attribute.KeyValue{
			semconv.MessagingOperationTypeSettle,
			semconv.MessagingDestinationPartitionID("2"),
			semconv.MessagingKafkaOffset(7),
			semconv.MessagingConsumerGroupName("billing"),
		}, semconv.MessagingMessageBodySizeKey, semconv.MessagingBatchMessageCountKey)
	}
	want := set(semconv.MessagingSystemKafka, semconv.MessagingOperationName("commit"), semconv.MessagingOperationTypeSettle,
		semconv.MessagingDestinationName("orders"), semconv.MessagingDestinationPartitionID("2"),
		semconv.MessagingConsumerGroupName("billing"), semconv.ServerAddress("kafka-0"), semconv.ServerPort(9092))
	if pts := points(t, rec, "messaging.client.operation.duration"); pts[want] != 1 || len(pts) != 3 {
		t.Errorf("operation.duration %v, want one point per settle action", pts)
	}
}

func TestSettleBatchAndError(t *testing.T) {
	tel, rec := newTel(t, middleware.WithSettleSpans(), middleware.WithMessageBodySize())
	op := driver.Operation{Kind: driver.OpSettle, System: "nats", Destination: "orders", Batch: true}
	failure := errors.New("ack timeout")
	err := tel.WrapSettle(func(context.Context, driver.Operation, []*broker.Message, driver.Settlement) error { return failure })(
		context.Background(), op, []*broker.Message{{Destination: "orders", ID: "a"}, {Destination: "orders", ID: "b"}}, driver.Settlement{Action: driver.Ack})
	if err != failure {
		t.Fatalf("settle returned %v", err)
	}
	s := rec.SpanByName(t, "ack orders")
	if s.Status().Code != codes.Error {
		t.Errorf("status %v, want Error", s.Status())
	}
	wantAttrs(t, s.Name(), s.Attributes(), []attribute.KeyValue{
		semconv.MessagingBatchMessageCount(2), semconv.ErrorTypeOther, semconv.MessagingOperationName("ack"),
	}, semconv.MessagingMessageIDKey, semconv.MessagingMessageBodySizeKey)
}

func TestSettleSpansOffByDefault(t *testing.T) {
	tel, rec := newTel(t)
	called := false
	op := driver.Operation{Kind: driver.OpSettle, System: "memory", Destination: "q"}
	err := tel.WrapSettle(func(context.Context, driver.Operation, []*broker.Message, driver.Settlement) error {
		called = true
		return nil
	})(context.Background(), op, []*broker.Message{{Destination: "q"}}, driver.Settlement{Action: driver.Ack})
	if err != nil || !called {
		t.Fatalf("settle: err %v, called %v", err, called)
	}
	if n := len(rec.Spans()); n != 0 {
		t.Errorf("%d spans without WithSettleSpans, want none", n)
	}
}
