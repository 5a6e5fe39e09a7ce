package middleware_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/broker"
)

const otherTP = "00-11111111111111111111111111111111-2222222222222222-01"

// TestTraceparentRules checks which creation context a message with
// several traceparent headers is processed under.
func TestTraceparentRules(t *testing.T) {
	parent := func(tp string) trace.TraceID {
		id, _ := trace.TraceIDFromHex(tp[3:35])
		return id
	}
	for _, tc := range []struct {
		name    string
		headers broker.Headers
		want    trace.TraceID // zero: a new trace
	}{
		{"case variant: the lower-case key wins",
			broker.Headers{{Key: "TRACEPARENT", Value: "garbage"}, {Key: "traceparent", Value: parentTP}}, parent(parentTP)},
		{"case variant after it",
			broker.Headers{{Key: "traceparent", Value: parentTP}, {Key: "Traceparent", Value: "garbage"}}, parent(parentTP)},
		{"two different traceparent headers: a new trace",
			broker.Headers{{Key: "traceparent", Value: parentTP}, {Key: "traceparent", Value: otherTP}}, trace.TraceID{}},
		{"the same traceparent twice",
			broker.Headers{{Key: "traceparent", Value: parentTP}, {Key: "traceparent", Value: parentTP}}, parent(parentTP)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tel, rec := newTel(t)
			msg := &broker.Message{Destination: "orders", Headers: tc.headers}
			if err := tel.WrapConsume(ok)(context.Background(), kafkaConsume("orders", false), []*broker.Message{msg}); err != nil {
				t.Fatal(err)
			}
			span := rec.SpanByName(t, "process orders")
			got := span.Parent().TraceID()
			if tc.want == (trace.TraceID{}) {
				if span.Parent().IsValid() || span.SpanContext().TraceID() == parent(parentTP) || span.SpanContext().TraceID() == parent(otherTP) {
					t.Errorf("processed under %s, want a new trace", span.SpanContext().TraceID())
				}
				return
			}
			if got != tc.want {
				t.Errorf("parent trace %s, want %s", got, tc.want)
			}
		})
	}
}
