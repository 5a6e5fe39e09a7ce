package middleware_test

import (
	"context"
	"errors"
	"testing"

	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/memory"
	"github.com/tracebus/tracebus/middleware"
)

// A failed attempt and its retry differ in the attempt attribute, not only
// in their status.
func TestProcessSpanCarriesDeliveryAttempt(t *testing.T) {
	tel, rec := newTel(t)
	b := broker.New(memory.New(), broker.WithMiddleware(tel))
	done := make(chan struct{})
	err := b.Subscribe("orders", func(_ context.Context, msg *broker.Message) error {
		if msg.Delivery.DeliveryCount == 1 {
			return errors.New("payment provider timeout")
		}
		close(done)
		return nil
	}, broker.MaxAttempts(2), broker.WithBackoff(broker.ConstantBackoff(0)))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	if err := b.Publish(t.Context(), &broker.Message{Destination: "orders", Body: []byte("7")}); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := b.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	spans := rec.SpansByName("process orders")
	if len(spans) != 2 {
		t.Fatalf("%d process spans, want 2:\n%s", len(spans), rec.Tree())
	}
	byAttempt := map[int64]map[string]string{}
	for _, s := range spans {
		m := attrMap(s.Attributes())
		byAttempt[m[middleware.DeliveryAttemptKey].AsInt64()] = map[string]string{
			"status":     s.Status().Code.String(),
			"error.type": m[semconv.ErrorTypeKey].AsString(),
		}
	}
	if got := byAttempt[1]; got["status"] != "Error" || got["error.type"] != "_OTHER" {
		t.Errorf("attempt 1: %v, want status Error and error.type _OTHER", got)
	}
	if got := byAttempt[2]; got["status"] != "Unset" || got["error.type"] != "" {
		t.Errorf("attempt 2: %v, want status Unset and no error.type", got)
	}
}
