package middleware

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
)

// opReceive is the operation name of a receive without a system-specific
// one (driver.Info.ReceiveOperation).
const opReceive = "receive"

// receive records a message taken on demand (broker.Puller) as the
// conventions' receive operation: a CLIENT span named "receive {dest}"
// (or the system's name for it, "poll" for Kafka), a child of the caller's
// ctx that starts when the wait began (op.Start) and links to the
// message's creation context, as the conventions ask of receive spans.
// The message's processing follows in a process span that, like every
// single-message process span, is a child of the creation context by
// default and links to this receive span (its ambient context).
//
// It records messaging.client.operation.duration (operation type receive)
// and messaging.client.consumed.messages: a pulled message is counted as
// consumed here, not again by its process span. A receive that failed in
// the transport has no message: its span and duration carry the error.
func (t *Telemetry) receive(ctx context.Context, op driver.Operation, msgs []*broker.Message, next driver.ConsumeFunc) error {
	start := op.Start
	if start.IsZero() {
		start = time.Now()
	}
	name := op.OperationName
	if name == "" {
		name = opReceive
	}
	dest, partition := op.Destination, ""
	var links []trace.Link
	var m *broker.Message
	if len(msgs) == 1 {
		m = msgs[0]
		if m.Destination != "" {
			dest = m.Destination
		}
		partition = partitionOf(op, m)
		if sc, _ := t.extract(&m.Headers); sc.IsValid() {
			links = []trace.Link{{SpanContext: sc}}
		}
	}
	kvs := consumerAttrs(op, name, semconv.MessagingOperationTypeReceive, dest, partition)
	if len(msgs) > 1 {
		kvs = append(kvs, semconv.MessagingBatchMessageCount(len(msgs)))
	}
	rctx, span := t.tracer.Start(ctx, spanName(name, lowDest(op), op.Temporary),
		kindClient,
		trace.WithAttributes(kvs...),
		trace.WithLinks(links...),
		trace.WithTimestamp(start))
	if m != nil && span.IsRecording() && (m.Delivery.DeliveryCount > 0 || t.hasMessageFacts(op, m)) {
		facts := t.appendMessageFacts(make([]attribute.KeyValue, 0, messageFacts+1), op, m)
		if m.Delivery.DeliveryCount > 0 {
			facts = append(facts, deliveryAttemptKey.Int(m.Delivery.DeliveryCount))
		}
		span.SetAttributes(facts...)
	}

	err := next(rctx, op, msgs)

	end, et := t.endSpan(span, err)
	if t.opDuration.Enabled(ctx) || t.consumed.Enabled(ctx) {
		ps := t.sets.sets(metricKey(op, name, dest, partition, et))
		t.opDuration.Inst().Record(ctx, end.Sub(start).Seconds(), ps.typedRecord...)
		if len(msgs) > 0 {
			t.consumed.Inst().Add(ctx, int64(len(msgs)), ps.plainAdd...)
		}
	}
	return err
}
