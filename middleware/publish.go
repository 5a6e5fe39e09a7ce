package middleware

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/baggage"
	"github.com/tracebus/tracebus/broker"
)

// WrapPublish implements broker.Middleware: it traces the publish, injects
// the creation context of every message into its headers and records the
// send metrics.
func (t *Telemetry) WrapPublish(next broker.PublishFunc) broker.PublishFunc {
	return func(ctx context.Context, op *broker.Operation, msgs []*broker.Message) error {
		if len(msgs) == 0 {
			return next(ctx, op, msgs)
		}
		// Inside a handler, the baggage view's current members (edits
		// included) become the OTel baggage the propagator injects.
		ctx = baggage.ContextForPublish(ctx)
		switch {
		case op.Batch || len(msgs) > 1:
			return t.publishBatch(ctx, op, msgs, next)
		default:
			return t.publishOne(ctx, op, msgs, next)
		}
	}
}

// publishOne traces a single publish with one PRODUCER send span whose
// context becomes the message's creation context.
func (t *Telemetry) publishOne(ctx context.Context, op *broker.Operation, msgs []*broker.Message, next broker.PublishFunc) error {
	start := time.Now()
	m := msgs[0]
	partition := partitionOf(op, m)

	kvs := make([]attribute.KeyValue, 0, 14)
	kvs = appendSystem(kvs, op, opSend)
	kvs = append(kvs, semconv.MessagingOperationTypeSend)
	kvs = appendDestination(kvs, op, m.Destination)
	kvs = appendServer(kvs, op)
	kvs = appendClientID(kvs, op)
	kvs = t.appendMessage(kvs, op, m, partition)

	ctx, span := t.tracer.Start(ctx, spanName(opSend, op.Destination, op.Temporary),
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(kvs...),
		trace.WithTimestamp(start))
	t.inject(ctx, &m.Headers)

	err := next(ctx, op, msgs)

	end := time.Now()
	var et attribute.KeyValue
	if err != nil {
		et = errorType(err)
		setError(span, err, et)
	}
	span.End(trace.WithTimestamp(end))
	t.recordPublish(ctx, op, msgs, partition, err, et, end.Sub(start))
	return err
}

// publishBatch traces a batch publish: a PRODUCER create span per message,
// injected into that message, and one CLIENT send span linking to all of
// them. With WithoutCreateSpans the send span is the PRODUCER and every
// message carries its context.
//
// The create spans stay open until the send returns, although a message is
// "created" before that: a create span ends when its message's fate is
// known, so that a message the transport rejected (BatchError) shows as a
// failed create span — the one a consumer would have linked to.
func (t *Telemetry) publishBatch(ctx context.Context, op *broker.Operation, msgs []*broker.Message, next broker.PublishFunc) error {
	start := time.Now()
	mixed := op.Destination == ""

	var (
		creates []trace.Span
		links   []trace.Link
	)
	if !t.cfg.noCreate {
		creates = make([]trace.Span, len(msgs))
		links = make([]trace.Link, len(msgs))
		name := spanName(opCreate, op.Destination, op.Temporary)
		// One backing array for every create span's attributes and one for
		// every link's: two allocations per batch instead of two per message.
		const perCreate, perLink = 12, 3
		createAttrs := make([]attribute.KeyValue, 0, perCreate*len(msgs))
		linkAttrs := make([]attribute.KeyValue, 0, perLink*len(msgs))
		for i, m := range msgs {
			partition := partitionOf(op, m)
			kvs := createAttrs[len(createAttrs):len(createAttrs):cap(createAttrs)]
			kvs = appendSystem(kvs, op, opCreate)
			kvs = append(kvs, semconv.MessagingOperationTypeCreate)
			kvs = appendDestination(kvs, op, m.Destination)
			kvs = appendServer(kvs, op)
			kvs = t.appendMessage(kvs, op, m, partition)
			createAttrs = createAttrs[:len(createAttrs)+len(kvs)]

			cctx, span := t.tracer.Start(ctx, name,
				trace.WithSpanKind(trace.SpanKindProducer),
				trace.WithAttributes(kvs...),
				trace.WithTimestamp(start))
			t.inject(cctx, &m.Headers)
			creates[i] = span

			// Per-message facts go on the link (semconv: batch publishing).
			la := linkAttrs[len(linkAttrs):len(linkAttrs):cap(linkAttrs)]
			if m.ID != "" {
				la = append(la, semconv.MessagingMessageID(m.ID))
			}
			if mixed {
				la = append(la, semconv.MessagingDestinationName(m.Destination))
			}
			if partition != "" {
				la = append(la, semconv.MessagingDestinationPartitionID(partition))
			}
			linkAttrs = linkAttrs[:len(linkAttrs)+len(la)]
			links[i] = trace.Link{SpanContext: span.SpanContext(), Attributes: la[:len(la):len(la)]}
		}
	}

	kvs := make([]attribute.KeyValue, 0, 12)
	kvs = appendSystem(kvs, op, opSend)
	kvs = append(kvs, semconv.MessagingOperationTypeSend)
	kvs = appendDestination(kvs, op, op.Destination)
	kvs = appendServer(kvs, op)
	kvs = appendClientID(kvs, op)
	kvs = append(kvs, semconv.MessagingBatchMessageCount(len(msgs)))
	partition := commonPartition(op, msgs)
	if partition != "" {
		kvs = append(kvs, semconv.MessagingDestinationPartitionID(partition))
	}
	kind := trace.SpanKindClient
	if creates == nil {
		kind = trace.SpanKindProducer
	}
	sctx, send := t.tracer.Start(ctx, spanName(opSend, op.Destination, op.Temporary),
		trace.WithSpanKind(kind),
		trace.WithAttributes(kvs...),
		trace.WithLinks(links...),
		trace.WithTimestamp(start))
	if creates == nil {
		for _, m := range msgs {
			t.inject(sctx, &m.Headers)
		}
	}

	err := next(sctx, op, msgs)

	end := time.Now()
	var et attribute.KeyValue
	if err != nil {
		et = errorType(err)
		setError(send, err, et)
		var be broker.BatchError
		if errors.As(err, &be) && len(be) == len(msgs) {
			for i, e := range be {
				if e != nil && creates != nil {
					setError(creates[i], e, semconv.ErrorType(e))
				}
			}
		} else {
			// The batch failed as a whole: so did every message in it.
			for _, c := range creates {
				setError(c, err, et)
			}
		}
	}
	for _, c := range creates {
		c.End(trace.WithTimestamp(end))
	}
	send.End(trace.WithTimestamp(end))
	t.recordPublish(sctx, op, msgs, partition, err, et, end.Sub(start))
	return err
}

// recordPublish records messaging.client.operation.duration (one point per
// publish call) and messaging.client.sent.messages (every message the call
// attempted; the failed ones of a BatchError with their own error.type).
//
// attribute.NewSet sorts its argument in place, so the attribute slice is
// only ever grown after a set was made from it, never cut back and reused.
func (t *Telemetry) recordPublish(ctx context.Context, op *broker.Operation, msgs []*broker.Message,
	partition string, err error, et attribute.KeyValue, d time.Duration,
) {
	kvs := make([]attribute.KeyValue, 0, 9)
	kvs = appendSystem(kvs, op, opSend)
	kvs = appendMetricDestination(kvs, op, op.Destination)
	if partition != "" {
		kvs = append(kvs, semconv.MessagingDestinationPartitionID(partition))
	}
	kvs = appendServer(kvs, op)

	var be broker.BatchError
	if err != nil && errors.As(err, &be) && len(be) == len(msgs) {
		t.recordBatchSent(ctx, kvs, be)
		kvs = append(kvs, et)
	} else {
		if err != nil {
			kvs = append(kvs, et)
		}
		t.sent.AddSet(ctx, int64(len(msgs)), attribute.NewSet(kvs...))
	}
	kvs = append(kvs, semconv.MessagingOperationTypeSend)
	t.opDuration.RecordSet(ctx, d.Seconds(), attribute.NewSet(kvs...))
}

// recordBatchSent counts the messages of a partly failed batch: the sent
// ones together, each failed one with its error.type.
func (t *Telemetry) recordBatchSent(ctx context.Context, common []attribute.KeyValue, be broker.BatchError) {
	ok := 0
	for _, e := range be {
		if e == nil {
			ok++
			continue
		}
		kvs := make([]attribute.KeyValue, 0, len(common)+1)
		kvs = append(append(kvs, common...), semconv.ErrorType(e))
		t.sent.AddSet(ctx, 1, attribute.NewSet(kvs...))
	}
	if ok > 0 {
		kvs := append(make([]attribute.KeyValue, 0, len(common)), common...)
		t.sent.AddSet(ctx, int64(ok), attribute.NewSet(kvs...))
	}
}
