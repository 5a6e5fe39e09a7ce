package middleware_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	otelbaggage "go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/middleware"
)

func kafkaPublish(dest string) driver.Operation {
	return driver.Operation{
		Kind: driver.OpPublish, System: "kafka", Destination: dest,
		ClientID: "svc-1", ServerAddress: "kafka-0", ServerPort: 9092,
	}
}

func TestPublishKafkaAttributes(t *testing.T) {
	tests := []struct {
		name   string
		msg    *broker.Message
		want   []attribute.KeyValue
		absent []attribute.Key
	}{
		{
			name: "key, partition and id",
			msg:  &broker.Message{Destination: "orders", Key: []byte("customer-7"), Body: []byte("{}"), ID: "m-1", Partition: new(int32(2))},
			want: []attribute.KeyValue{
				semconv.MessagingKafkaMessageKey("customer-7"),
				semconv.MessagingDestinationPartitionID("2"),
				semconv.MessagingMessageID("m-1"),
			},
			absent: []attribute.Key{semconv.MessagingKafkaMessageTombstoneKey, semconv.MessagingKafkaOffsetKey},
		},
		{
			name:   "nil key",
			msg:    &broker.Message{Destination: "orders", Body: []byte("{}")},
			absent: []attribute.Key{semconv.MessagingKafkaMessageKeyKey, semconv.MessagingDestinationPartitionIDKey, semconv.MessagingMessageIDKey, semconv.MessagingKafkaMessageTombstoneKey},
		},
		{
			name:   "binary key has no string form",
			msg:    &broker.Message{Destination: "orders", Key: []byte{0xff, 0xfe, 0x00}, Body: []byte("{}")},
			absent: []attribute.Key{semconv.MessagingKafkaMessageKeyKey},
		},
		{
			name: "tombstone",
			msg:  &broker.Message{Destination: "orders", Key: []byte("customer-7")},
			want: []attribute.KeyValue{semconv.MessagingKafkaMessageTombstone(true), semconv.MessagingKafkaMessageKey("customer-7")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tel, rec := newTel(t)
			if err := tel.WrapPublish(ok)(context.Background(), kafkaPublish("orders"), []*broker.Message{tc.msg}); err != nil {
				t.Fatal(err)
			}
			s := rec.SpanByName(t, "send orders")
			want := append([]attribute.KeyValue{
				semconv.MessagingSystemKafka,
				semconv.MessagingOperationName("send"),
				semconv.MessagingOperationTypeSend,
				semconv.MessagingDestinationName("orders"),
				semconv.MessagingClientID("svc-1"),
				semconv.ServerAddress("kafka-0"),
				semconv.ServerPort(9092),
			}, tc.want...)
			wantAttrs(t, s.Name(), s.Attributes(), want, append(tc.absent, semconv.MessagingBatchMessageCountKey, semconv.MessagingMessageBodySizeKey)...)
		})
	}
}

func TestPublishNonKafkaHasNoKafkaAttributes(t *testing.T) {
	tel, rec := newTel(t)
	op := driver.Operation{Kind: driver.OpPublish, System: "nats", Destination: "orders"}
	msg := &broker.Message{Destination: "orders", Key: []byte("k"), Partition: new(int32(1))}
	if err := tel.WrapPublish(ok)(context.Background(), op, []*broker.Message{msg}); err != nil {
		t.Fatal(err)
	}
	s := rec.SpanByName(t, "send orders")
	wantAttrs(t, s.Name(), s.Attributes(), []attribute.KeyValue{semconv.MessagingSystemKey.String("nats")},
		semconv.MessagingKafkaMessageKeyKey, semconv.MessagingKafkaMessageTombstoneKey,
		semconv.MessagingDestinationPartitionIDKey, semconv.ServerAddressKey, semconv.MessagingClientIDKey)
}

func TestPublishTemporaryDestination(t *testing.T) {
	tel, rec := newTel(t)
	op := driver.Operation{Kind: driver.OpPublish, System: "nats", Destination: "_INBOX.x7Yz", Temporary: true}
	if err := tel.WrapPublish(ok)(context.Background(), op, []*broker.Message{{Destination: "_INBOX.x7Yz"}}); err != nil {
		t.Fatal(err)
	}
	// The inbox stays out of the span name and out of metric attributes.
	s := rec.SpanByName(t, "send")
	wantAttrs(t, s.Name(), s.Attributes(), []attribute.KeyValue{
		semconv.MessagingDestinationName("_INBOX.x7Yz"),
		semconv.MessagingDestinationTemporary(true),
	})
	pts := points(t, rec, "messaging.client.sent.messages")
	want := set(semconv.MessagingSystemKey.String("nats"), semconv.MessagingOperationName("send"))
	if pts[want] != 1 || len(pts) != 1 {
		t.Errorf("sent.messages points %v, want one without destination", pts)
	}
}

func TestPublishBatchMixedDestinations(t *testing.T) {
	tel, rec := newTel(t)
	op := driver.Operation{Kind: driver.OpPublish, System: "nats", Batch: true} // Destination "" : mixed
	msgs := []*broker.Message{{Destination: "a", ID: "1"}, {Destination: "b"}}
	if err := tel.WrapPublish(ok)(context.Background(), op, msgs); err != nil {
		t.Fatal(err)
	}
	send := rec.SpanByName(t, "send")
	wantAttrs(t, "send", send.Attributes(), []attribute.KeyValue{semconv.MessagingBatchMessageCount(2)},
		semconv.MessagingDestinationNameKey)
	creates := rec.SpansByName("create")
	if len(creates) != 2 {
		t.Fatalf("spans %q, want two named create", spanNames(rec.Spans()))
	}
	links := send.Links()
	if len(links) != 2 {
		t.Fatalf("send has %d links, want 2", len(links))
	}
	wantAttrs(t, "link 0", links[0].Attributes, []attribute.KeyValue{semconv.MessagingDestinationName("a"), semconv.MessagingMessageID("1")})
	wantAttrs(t, "link 1", links[1].Attributes, []attribute.KeyValue{semconv.MessagingDestinationName("b")}, semconv.MessagingMessageIDKey)
	// Each create span still names its own message's destination.
	for i, m := range msgs {
		sc := trace.SpanContextFromContext(w3c.Extract(context.Background(), &m.Headers))
		if sc.SpanID() != links[i].SpanContext.SpanID() {
			t.Errorf("message %d carries %s, link %d points at %s", i, sc.SpanID(), i, links[i].SpanContext.SpanID())
		}
	}
}

var errRejected = errors.New("rejected by broker")

func TestPublishBatchErrorMarksFailedCreates(t *testing.T) {
	tel, rec := newTel(t)
	op := driver.Operation{Kind: driver.OpPublish, System: "memory", Destination: "q", Batch: true}
	msgs := []*broker.Message{{Destination: "q"}, {Destination: "q"}, {Destination: "q"}}
	batchErr := broker.BatchError{nil, errRejected, nil}
	err := tel.WrapPublish(func(context.Context, driver.Operation, []*broker.Message) error { return batchErr })(context.Background(), op, msgs)
	if !errors.Is(err, errRejected) {
		t.Fatalf("error %v, want the batch error", err)
	}
	et := semconv.ErrorTypeOther
	send := rec.SpanByName(t, "send q")
	if send.Status().Code != codes.Error {
		t.Errorf("send status %v, want Error", send.Status())
	}
	wantAttrs(t, "send", send.Attributes(), []attribute.KeyValue{et})
	for i, m := range msgs {
		sc := trace.SpanContextFromContext(w3c.Extract(context.Background(), &m.Headers))
		create := spanByID(t, rec, sc.SpanID())
		if i == 1 {
			if create.Status().Code != codes.Error || create.Status().Description != errRejected.Error() {
				t.Errorf("create %d status %v, want Error %q", i, create.Status(), errRejected)
			}
			wantAttrs(t, "failed create", create.Attributes(), []attribute.KeyValue{et})
		} else {
			if create.Status().Code != codes.Unset {
				t.Errorf("create %d status %v, want Unset", i, create.Status())
			}
			wantAttrs(t, "sent create", create.Attributes(), nil, semconv.ErrorTypeKey)
		}
	}
	base := []attribute.KeyValue{semconv.MessagingSystemKey.String("memory"), semconv.MessagingOperationName("send"), semconv.MessagingDestinationName("q")}
	sent := points(t, rec, "messaging.client.sent.messages")
	if sent[set(base...)] != 2 || sent[set(append(slices.Clone(base), et)...)] != 1 || len(sent) != 2 {
		t.Errorf("sent.messages %v, want 2 sent and 1 failed with error.type", sent)
	}
}

func TestPublishWholeBatchFailure(t *testing.T) {
	tel, rec := newTel(t)
	op := driver.Operation{Kind: driver.OpPublish, System: "memory", Destination: "q", Batch: true}
	msgs := []*broker.Message{{Destination: "q"}, {Destination: "q"}}
	_ = tel.WrapPublish(func(context.Context, driver.Operation, []*broker.Message) error { return broker.ErrClosed })(context.Background(), op, msgs)
	for _, c := range rec.SpansByName("create q") {
		if c.Status().Code != codes.Error {
			t.Errorf("create status %v, want Error: the whole batch failed", c.Status())
		}
	}
	sent := points(t, rec, "messaging.client.sent.messages")
	want := set(semconv.MessagingSystemKey.String("memory"), semconv.MessagingOperationName("send"),
		semconv.MessagingDestinationName("q"), semconv.ErrorTypeKey.String("closed"))
	if sent[want] != 2 {
		t.Errorf("sent.messages %v, want 2 with error.type", sent)
	}
}

func TestPublishReplacesStaleContext(t *testing.T) {
	tel, rec := newTel(t)
	op := driver.Operation{Kind: driver.OpPublish, System: "memory", Destination: "q"}
	// A forwarded message: the previous hop's context and baggage, in a
	// case another library might use.
	msg := &broker.Message{Destination: "q"}
	msg.Headers.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	msg.Headers.Set("Baggage", "stale=1")
	msg.Headers.Set("x-app", "kept")
	if err := tel.WrapPublish(ok)(context.Background(), op, []*broker.Message{msg}); err != nil {
		t.Fatal(err)
	}
	send := rec.SpanByName(t, "send q")
	if got := msg.Headers.Values("traceparent"); len(got) != 1 || !slices.Contains(msg.Headers.Keys(), "traceparent") {
		t.Fatalf("traceparent headers %q (keys %q), want one, lower-case", got, msg.Headers.Keys())
	}
	sc := trace.SpanContextFromContext(w3c.Extract(context.Background(), &msg.Headers))
	if sc.SpanID() != send.SpanContext().SpanID() {
		t.Errorf("message carries %s, want the send span %s", sc.SpanID(), send.SpanContext().SpanID())
	}
	if v, found := msg.Headers.Lookup("baggage"); found {
		t.Errorf("stale baggage header %q kept though ctx has no baggage", v)
	}
	if msg.Headers.Get("x-app") != "kept" {
		t.Errorf("application header lost: %v", msg.Headers)
	}
}

func TestPublishInjectsBaggage(t *testing.T) {
	tel, _ := newTel(t)
	op := driver.Operation{Kind: driver.OpPublish, System: "memory", Destination: "q"}
	m, _ := otelbaggage.NewMember("tenant", "acme")
	bag, _ := otelbaggage.New(m)
	ctx := otelbaggage.ContextWithBaggage(context.Background(), bag)
	msg := &broker.Message{Destination: "q"}
	if err := tel.WrapPublish(ok)(ctx, op, []*broker.Message{msg}); err != nil {
		t.Fatal(err)
	}
	if got := msg.Headers.Get("baggage"); got != "tenant=acme" {
		t.Errorf("baggage header %q, want tenant=acme", got)
	}
}

func TestPublishBodySizeOnCreateSpansOnly(t *testing.T) {
	tel, rec := newTel(t, middleware.WithMessageBodySize())
	op := driver.Operation{Kind: driver.OpPublish, System: "memory", Destination: "q", Batch: true}
	msgs := []*broker.Message{{Destination: "q", Body: []byte("abc")}, {Destination: "q", Body: []byte("de")}}
	if err := tel.WrapPublish(ok)(context.Background(), op, msgs); err != nil {
		t.Fatal(err)
	}
	sizes := map[int64]bool{}
	for _, c := range rec.SpansByName("create q") {
		v, found := attrMap(c.Attributes())[semconv.MessagingMessageBodySizeKey]
		if !found {
			t.Errorf("create span without body size")
		}
		sizes[v.AsInt64()] = true
	}
	if !sizes[3] || !sizes[2] {
		t.Errorf("body sizes %v, want 3 and 2", sizes)
	}
	wantAttrs(t, "send", rec.SpanByName(t, "send q").Attributes(), nil, semconv.MessagingMessageBodySizeKey)
}
