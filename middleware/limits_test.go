package middleware_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/middleware"
)

// TestMessageAttributeLimit checks that message ids and Kafka keys, which
// the sender chooses, are capped on spans and links, at a UTF-8 boundary.
func TestMessageAttributeLimit(t *testing.T) {
	// 255 ASCII bytes then "é" (2 bytes): a cut at 256 falls inside it.
	id := strings.Repeat("i", 255) + "é" + strings.Repeat("x", 64<<10)
	key := []byte(strings.Repeat("k", 900<<10))
	for _, tc := range []struct {
		name           string
		opts           []middleware.Option
		wantID, wantKy int
	}{
		{"default", nil, 255, 256},
		{"WithMessageAttributeLimit(10)", []middleware.Option{middleware.WithMessageAttributeLimit(10)}, 10, 10},
		{"WithMessageAttributeLimit(0) records whole values", []middleware.Option{middleware.WithMessageAttributeLimit(0)}, len(id), len(key)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tel, rec := newTel(t, tc.opts...)
			msg := delivered("orders", 0, 1, parentTP)
			msg.ID, msg.Key = id, key
			if err := tel.WrapConsume(ok)(context.Background(), kafkaConsume("orders", false), []*broker.Message{msg}); err != nil {
				t.Fatal(err)
			}
			attrs := attrMap(rec.SpanByName(t, "process orders").Attributes())
			if got := attrs[semconv.MessagingMessageIDKey].AsString(); got != id[:tc.wantID] {
				t.Errorf("message id of %d bytes, want the first %d", len(got), tc.wantID)
			}
			if got := attrs[semconv.MessagingKafkaMessageKeyKey].AsString(); got != string(key[:tc.wantKy]) {
				t.Errorf("Kafka key of %d bytes, want the first %d", len(got), tc.wantKy)
			}

			// The same cap on a batch's links.
			rec.Reset()
			batch := delivered("orders", 0, 2, parentTP)
			batch.ID = id
			if err := tel.WrapConsume(ok)(context.Background(), kafkaConsume("orders", true), []*broker.Message{batch}); err != nil {
				t.Fatal(err)
			}
			links := rec.SpanByName(t, "process orders").Links()
			if len(links) != 1 {
				t.Fatalf("%d links, want 1", len(links))
			}
			if got := attrMap(links[0].Attributes)[semconv.MessagingMessageIDKey].AsString(); got != id[:tc.wantID] {
				t.Errorf("link message id of %d bytes, want the first %d", len(got), tc.wantID)
			}
		})
	}
}

// TestBatchLinkLimit checks that batch spans stop linking at the limit
// while still counting every message.
func TestBatchLinkLimit(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []middleware.Option
		want int
	}{
		{"default", nil, 128},
		{"WithBatchLinkLimit(10)", []middleware.Option{middleware.WithBatchLinkLimit(10)}, 10},
		{"WithBatchLinkLimit(0) links all", []middleware.Option{middleware.WithBatchLinkLimit(0)}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tel, rec := newTel(t, tc.opts...)
			msgs := make([]*broker.Message, 200)
			for i := range msgs {
				msgs[i] = delivered("orders", 0, int64(i), parentTP)
				msgs[i].ID = fmt.Sprint(i)
			}
			if err := tel.WrapConsume(ok)(context.Background(), kafkaConsume("orders", true), msgs); err != nil {
				t.Fatal(err)
			}
			span := rec.SpanByName(t, "process orders")
			if n := len(span.Links()) + span.DroppedLinks(); n != tc.want {
				t.Errorf("process span built %d links, want %d", n, tc.want)
			}
			if got := attrMap(span.Attributes())[semconv.MessagingBatchMessageCountKey]; got != attribute.IntValue(200) {
				t.Errorf("batch message count %v, want 200", got.String())
			}

			pub := make([]*broker.Message, 200)
			for i := range pub {
				pub[i] = &broker.Message{Destination: "orders", ID: fmt.Sprint(i)}
			}
			op := driver.Operation{Kind: driver.OpPublish, System: "kafka", Destination: "orders", Batch: true}
			if err := tel.WrapPublish(ok)(context.Background(), op, pub); err != nil {
				t.Fatal(err)
			}
			send := rec.SpanByName(t, "send orders")
			if n := len(send.Links()) + send.DroppedLinks(); n != tc.want {
				t.Errorf("send span built %d links, want %d", n, tc.want)
			}
			for _, m := range pub {
				if m.Headers.Get("traceparent") == "" {
					t.Fatalf("message %s has no creation context", m.ID)
				}
			}
		})
	}
}
