package conformance

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/internal/testkit"
)

// testTelTypedMessageID: a typed publish, which sets no id of its own,
// gets one, and the send span and the consumer's process span both carry
// it as messaging.message.id, so one message's trace can be found by it
// from either side. Two publishes get two ids.
func testTelTypedMessageID(t *testing.T, s Suite) {
	e := newTelEnv(t, s)
	dest := s.Destination(t)
	in := testkit.NewInbox[*broker.Message](s.Wait())
	e.subscribe(t, dest, collect(in))
	s.Start(t, e.b)

	pub := broker.Must(broker.NewPublisher[testkit.Order](e.b, dest))
	for _, id := range []string{"A-1", "A-2"} {
		if err := pub.Publish(context.Background(), testkit.Order{ID: id, Quantity: 1}); err != nil {
			t.Fatalf("publish to %s: %v", dest, err)
		}
	}
	got := in.TakeN(t, 2)
	e.close(t)

	sends := e.rec.SpansByName("send " + dest)
	procs := e.rec.SpansByName("process " + dest)
	if len(sends) != 2 || len(procs) != 2 {
		t.Fatalf("%d send and %d process spans, want 2 of each", len(sends), len(procs))
	}
	sent := map[string]bool{}
	for _, sp := range sends {
		id := messageIDOf(sp)
		if id == "" {
			t.Fatalf("send span %s has no %s", sp.Name(), semconv.MessagingMessageIDKey)
		}
		sent[id] = true
	}
	if len(sent) != 2 {
		t.Errorf("two publishes sent the ids %v, want two different ones", sent)
	}
	for i, sp := range procs {
		id := messageIDOf(sp)
		if !sent[id] {
			t.Errorf("process span %d has %s %q, none of the send spans' %v", i, semconv.MessagingMessageIDKey, id, sent)
		}
	}
	for _, m := range got {
		if !sent[m.ID] {
			t.Errorf("the handler got Message.ID %q, none of the send spans' %v", m.ID, sent)
		}
	}
}

func messageIDOf(sp sdktrace.ReadOnlySpan) string {
	for _, kv := range sp.Attributes() {
		if kv.Key == semconv.MessagingMessageIDKey {
			return kv.Value.AsString()
		}
	}
	return ""
}
