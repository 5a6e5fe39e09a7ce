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

// opRequest is the messaging.operation.name of the span that covers a
// whole request (driver.OpRequest).
const opRequest = "request"

// request traces a broker.Request: one CLIENT span "request {dest}" from the
// call until the reply is received or the requester gives up. Inside it the
// broker publishes the request (a PRODUCER "send {dest}" child, injected
// into the message, so the replier's process span is its child) and, once
// the reply arrives, consumes it (a CONSUMER "process" span without a
// destination in its name, child of the reply's own send span).
//
// Semconv has no request operation: the span gets operation name "request"
// and no operation type, because it is neither only a send nor a receive;
// it records messaging.client.operation.duration under that name, without
// operation type, so that the round trip's latency is a metric too. The
// correlation id is messaging.message.conversation_id.
func (t *Telemetry) request(ctx context.Context, op driver.Operation, msgs []*broker.Message, next driver.PublishFunc) error {
	start := time.Now()
	m := msgs[0]
	kvs := make([]attribute.KeyValue, 0, attrCap(op, 4)) // system, name, destination, conversation
	kvs = appendSystem(kvs, op, opRequest)
	kvs = appendDestination(kvs, op, m.Destination)
	kvs = appendServer(kvs, op)
	kvs = appendClientID(kvs, op)
	if id := m.Headers.Get(driver.HeaderCorrelationID); id != "" {
		kvs = append(kvs, semconv.MessagingMessageConversationID(id))
	}
	ctx, span := t.tracer.Start(ctx, spanName(opRequest, lowDest(op), op.Temporary),
		kindClient,
		trace.WithAttributes(kvs...),
		trace.WithTimestamp(start))

	err := next(ctx, op, msgs)

	end, et := t.endSpan(span, err)
	if t.opDuration.Enabled(ctx) {
		ps := t.sets.sets(metricKey(op, opRequest, op.Destination, "", et))
		t.opDuration.Inst().Record(ctx, end.Sub(start).Seconds(), ps.plainRecord...)
	}
	return err
}

// endSpan ends span now, failed with err's message and error.type when err
// is not nil, and returns the end time and the error type (zero on
// success) for the metrics.
func (t *Telemetry) endSpan(span trace.Span, err error) (time.Time, attribute.KeyValue) {
	end := time.Now()
	var et attribute.KeyValue
	if err != nil {
		et = errorType(err)
		t.setError(span, err, et)
	}
	span.End()
	return end, et
}
