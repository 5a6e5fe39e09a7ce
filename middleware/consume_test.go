package middleware_test

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	otelbaggage "go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/baggage"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/middleware"
)

const parentTP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

func kafkaConsume(dest string, batch bool) driver.Operation {
	return driver.Operation{
		Kind: driver.OpConsume, System: "kafka", Destination: dest, Group: "billing", Batch: batch,
		ClientID: "svc-1", ServerAddress: "kafka-0", ServerPort: 9092,
	}
}

func delivered(dest string, partition int32, offset int64, tp string) *broker.Message {
	m := &broker.Message{Destination: dest, Key: []byte("customer-7"), Body: []byte("{}"),
		Delivery: driver.Delivery{Partition: partition, Offset: offset, DeliveryCount: 1}}
	if tp != "" {
		m.Headers.Set("traceparent", tp)
	}
	return m
}

func TestConsumeKafkaAttributes(t *testing.T) {
	tel, rec := newTel(t)
	msg := delivered("orders", 3, 42, parentTP)
	msg.ID = "3-42"
	if err := tel.WrapConsume(ok)(context.Background(), kafkaConsume("orders", false), []*broker.Message{msg}); err != nil {
		t.Fatal(err)
	}
	s := rec.SpanByName(t, "process orders")
	if s.SpanKind() != trace.SpanKindConsumer || s.Parent().SpanID().String() != "b7ad6b7169203331" || !s.Parent().IsRemote() {
		t.Errorf("kind %s parent %s, want a consumer child of the remote b7ad6b7169203331", s.SpanKind(), s.Parent().SpanID())
	}
	wantAttrs(t, s.Name(), s.Attributes(), []attribute.KeyValue{
		semconv.MessagingSystemKafka,
		semconv.MessagingOperationName("process"),
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingDestinationName("orders"),
		semconv.MessagingDestinationPartitionID("3"),
		semconv.MessagingKafkaOffset(42),
		semconv.MessagingKafkaMessageKey("customer-7"),
		semconv.MessagingMessageID("3-42"),
		semconv.MessagingConsumerGroupName("billing"),
		semconv.MessagingClientID("svc-1"),
		semconv.ServerAddress("kafka-0"),
		semconv.ServerPort(9092),
	}, semconv.MessagingDestinationTemplateKey, semconv.MessagingBatchMessageCountKey, semconv.MessagingKafkaMessageTombstoneKey)

	want := set(semconv.MessagingSystemKafka, semconv.MessagingOperationName("process"),
		semconv.MessagingDestinationName("orders"), semconv.MessagingDestinationPartitionID("3"),
		semconv.MessagingConsumerGroupName("billing"), semconv.ServerAddress("kafka-0"), semconv.ServerPort(9092))
	for _, name := range []string{"messaging.process.duration", "messaging.client.consumed.messages"} {
		if pts := points(t, rec, name); pts[want] != 1 || len(pts) != 1 {
			t.Errorf("%s points %v, want one with partition and group", name, pts)
		}
	}
}

func TestConsumeLinksAmbientSpan(t *testing.T) {
	tel, rec := newTel(t)
	ctx, ambient := rec.TracerProvider.Tracer("test").Start(context.Background(), "http request")
	defer ambient.End()
	msg := delivered("orders", 0, 1, parentTP)
	if err := tel.WrapConsume(ok)(ctx, kafkaConsume("orders", false), []*broker.Message{msg}); err != nil {
		t.Fatal(err)
	}
	s := rec.SpanByName(t, "process orders")
	if s.Parent().SpanID().String() != "b7ad6b7169203331" {
		t.Errorf("parent %s, want the message's creation context", s.Parent().SpanID())
	}
	if len(s.Links()) != 1 || s.Links()[0].SpanContext.SpanID() != ambient.SpanContext().SpanID() {
		t.Errorf("links %v, want one to the ambient span", s.Links())
	}
}

func TestConsumeWithoutContextIsRootOfAmbient(t *testing.T) {
	tel, rec := newTel(t)
	for _, tp := range []string{"", "garbage", "00-00000000000000000000000000000000-0000000000000000-01", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"} {
		ran := false
		err := tel.WrapConsume(func(context.Context, driver.Operation, []*broker.Message) error {
			ran = true
			return nil
		})(context.Background(), kafkaConsume("orders", false), []*broker.Message{delivered("orders", 0, 1, tp)})
		if err != nil || !ran {
			t.Errorf("traceparent %q: err %v, handler ran %v", tp, err, ran)
		}
	}
	for _, s := range rec.SpansByName("process orders") {
		if s.Parent().IsValid() || len(s.Links()) != 0 {
			t.Errorf("span with parent %s and %d links, want a root without links", s.Parent().SpanID(), len(s.Links()))
		}
	}
}

func TestConsumeLinkedProcessSpans(t *testing.T) {
	tel, rec := newTel(t, middleware.WithLinkedProcessSpans())
	if err := tel.WrapConsume(ok)(context.Background(), kafkaConsume("orders", false), []*broker.Message{delivered("orders", 0, 1, parentTP)}); err != nil {
		t.Fatal(err)
	}
	s := rec.SpanByName(t, "process orders")
	if s.Parent().IsValid() || s.SpanContext().TraceID().String() == "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("span in trace %s with parent %s, want a new root", s.SpanContext().TraceID(), s.Parent().SpanID())
	}
	if len(s.Links()) != 1 || s.Links()[0].SpanContext.SpanID().String() != "b7ad6b7169203331" {
		t.Errorf("links %v, want one to the creation context", s.Links())
	}
}

func TestConsumeBatchLinks(t *testing.T) {
	tel, rec := newTel(t)
	// Two partitions; the middle message came without a creation context.
	msgs := []*broker.Message{
		delivered("orders", 0, 10, "00-11111111111111111111111111111111-1111111111111111-01"),
		delivered("orders", 1, 20, ""),
		delivered("orders", 1, 21, "00-22222222222222222222222222222222-2222222222222222-01"),
	}
	msgs[0].ID = "0-10"
	if err := tel.WrapConsume(ok)(context.Background(), kafkaConsume("orders", true), msgs); err != nil {
		t.Fatal(err)
	}
	s := rec.SpanByName(t, "process orders")
	if s.Parent().IsValid() {
		t.Errorf("batch process span has parent %s, want the ambient context (none)", s.Parent().SpanID())
	}
	wantAttrs(t, s.Name(), s.Attributes(), []attribute.KeyValue{
		semconv.MessagingBatchMessageCount(3),
		semconv.MessagingDestinationName("orders"),
	}, semconv.MessagingDestinationPartitionIDKey, semconv.MessagingKafkaOffsetKey, semconv.MessagingMessageIDKey, semconv.MessagingKafkaMessageKeyKey)
	links := s.Links()
	if len(links) != 2 {
		t.Fatalf("%d links, want 2 (the message without context has none)", len(links))
	}
	wantAttrs(t, "link 0", links[0].Attributes, []attribute.KeyValue{
		semconv.MessagingMessageID("0-10"), semconv.MessagingDestinationPartitionID("0"), semconv.MessagingKafkaOffset(10),
	}, semconv.MessagingDestinationNameKey)
	wantAttrs(t, "link 1", links[1].Attributes, []attribute.KeyValue{
		semconv.MessagingDestinationPartitionID("1"), semconv.MessagingKafkaOffset(21),
	}, semconv.MessagingMessageIDKey)
	if links[1].SpanContext.TraceID().String() != "22222222222222222222222222222222" {
		t.Errorf("link 1 to trace %s", links[1].SpanContext.TraceID())
	}
	// Partitions differ: the metric point carries none; three consumed.
	want := set(semconv.MessagingSystemKafka, semconv.MessagingOperationName("process"),
		semconv.MessagingDestinationName("orders"), semconv.MessagingConsumerGroupName("billing"),
		semconv.ServerAddress("kafka-0"), semconv.ServerPort(9092))
	if pts := points(t, rec, "messaging.client.consumed.messages"); pts[want] != 3 {
		t.Errorf("consumed.messages %v, want 3 without partition", pts)
	}
}

func TestConsumeBatchAcrossSubjects(t *testing.T) {
	tel, rec := newTel(t)
	op := driver.Operation{Kind: driver.OpConsume, System: "nats", Destination: "orders.*", Batch: true}
	msgs := []*broker.Message{{Destination: "orders.new"}, {Destination: "orders.paid"}}
	for _, m := range msgs {
		m.Headers.Set("traceparent", parentTP)
	}
	if err := tel.WrapConsume(ok)(context.Background(), op, msgs); err != nil {
		t.Fatal(err)
	}
	s := rec.SpanByName(t, "process orders.*")
	wantAttrs(t, s.Name(), s.Attributes(), []attribute.KeyValue{semconv.MessagingDestinationTemplate("orders.*")},
		semconv.MessagingDestinationNameKey, semconv.MessagingDestinationPartitionIDKey, semconv.MessagingKafkaOffsetKey)
	for i, l := range s.Links() {
		wantAttrs(t, "link", l.Attributes, []attribute.KeyValue{semconv.MessagingDestinationName(msgs[i].Destination)},
			semconv.MessagingKafkaOffsetKey, semconv.MessagingDestinationPartitionIDKey)
	}
	want := set(semconv.MessagingSystemKey.String("nats"), semconv.MessagingOperationName("process"),
		semconv.MessagingDestinationTemplate("orders.*"))
	if pts := points(t, rec, "messaging.process.duration"); pts[want] != 1 {
		t.Errorf("process.duration %v, want one point keyed by the template", pts)
	}
}

func TestConsumeBaggageReachesHandler(t *testing.T) {
	tel, _ := newTel(t)
	msg := delivered("orders", 0, 1, parentTP)
	msg.Headers.Set("baggage", "tenant=acme,user=7")
	var otel, view map[string]string
	err := tel.WrapConsume(func(ctx context.Context, _ driver.Operation, _ []*broker.Message) error {
		otel = map[string]string{}
		for _, m := range otelbaggage.FromContext(ctx).Members() {
			otel[m.Key()] = m.Value()
		}
		view = baggage.FromContext(ctx).All()
		return nil
	})(context.Background(), kafkaConsume("orders", false), []*broker.Message{msg})
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]map[string]string{"otel baggage": otel, "baggage view": view} {
		if len(got) != 2 || got["tenant"] != "acme" || got["user"] != "7" {
			t.Errorf("%s in handler = %v, want tenant=acme user=7", name, got)
		}
	}
}

func TestConsumeErrorAndPanic(t *testing.T) {
	tel, rec := newTel(t)
	op := driver.Operation{Kind: driver.OpConsume, System: "memory", Destination: "q"}
	failure := errors.New("boom")
	for _, err := range []error{failure, &broker.PanicError{Value: "bad"}} {
		got := tel.WrapConsume(func(context.Context, driver.Operation, []*broker.Message) error { return err })(
			context.Background(), op, []*broker.Message{{Destination: "q"}})
		if got != err {
			t.Errorf("consume returned %v, want the handler's %v", got, err)
		}
	}
	types := map[string]bool{}
	for _, s := range rec.SpansByName("process q") {
		if len(s.Events()) != 0 {
			t.Errorf("span has %d events; errors are recorded as status and error.type only", len(s.Events()))
		}
		types[attrMap(s.Attributes())[semconv.ErrorTypeKey].AsString()] = true
	}
	if !types["panic"] || !types["_OTHER"] {
		t.Errorf("error types %v, want panic and _OTHER", types)
	}
}

// panicky is a propagator that panics on every call, standing in for a
// buggy third-party one.
type panicky struct{}

func (panicky) Inject(context.Context, propagation.TextMapCarrier) { panic("inject") }
func (panicky) Extract(context.Context, propagation.TextMapCarrier) context.Context {
	panic("extract")
}
func (panicky) Fields() []string { return []string{"x-panicky"} }

func TestPanickingPropagatorNeverFailsAMessage(t *testing.T) {
	tel, rec := newTel(t, middleware.WithPropagators(panicky{}))
	op := driver.Operation{Kind: driver.OpPublish, System: "memory", Destination: "q"}
	if err := tel.WrapPublish(ok)(context.Background(), op, []*broker.Message{{Destination: "q"}}); err != nil {
		t.Errorf("publish: %v", err)
	}
	cop := driver.Operation{Kind: driver.OpConsume, System: "memory", Destination: "q"}
	ran := false
	err := tel.WrapConsume(func(context.Context, driver.Operation, []*broker.Message) error { ran = true; return nil })(
		context.Background(), cop, []*broker.Message{delivered("q", 0, 0, parentTP)})
	if err != nil || !ran {
		t.Errorf("consume: err %v, handler ran %v", err, ran)
	}
	if s := rec.SpanByName(t, "process q"); s.Parent().IsValid() {
		t.Errorf("process span has a parent though extraction failed")
	}
}
