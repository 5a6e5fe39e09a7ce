package middleware_test

import (
	"testing"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/testutil"
)

// A failed attempt and its retry differ in the attempt attribute, not only
// in their status.
func TestProcessSpanCarriesDeliveryAttempt(t *testing.T) {
	tel, rec := newTel(t)
	b := broker.New(testutil.Memory(t), broker.WithMiddleware(tel))
	testkit.DeliverWithOneRetry(t, b, &broker.Message{Destination: "orders", Body: []byte("7")})

	spans := rec.SpansByName("process orders")
	if len(spans) != 2 {
		t.Fatalf("%d process spans, want 2:\n%s", len(spans), rec.Tree())
	}
	byAttempt := map[int64]map[string]string{}
	for _, s := range spans {
		m := attrMap(s.Attributes())
		byAttempt[m[attribute.Key("tracebus.delivery.attempt")].AsInt64()] = map[string]string{
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
