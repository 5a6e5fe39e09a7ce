package middleware

import (
	"context"
	"errors"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/baggage"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
)

// WrapPublish implements driver.Middleware: it traces the publish, injects
// the creation context of every message into its headers and records the
// send metrics.
func (t *Telemetry) WrapPublish(next driver.PublishFunc) driver.PublishFunc {
	cache := &staticsCache{name: opSend}
	return func(ctx context.Context, op driver.Operation, msgs []*broker.Message) error {
		if len(msgs) == 0 {
			return next(ctx, op, msgs)
		}
		// Inside a handler, the baggage view's current members (edits
		// included) become the OTel baggage the propagator injects.
		ctx = baggage.ContextForPublish(ctx)
		switch {
		case op.Kind == driver.OpRequest:
			return t.request(ctx, op, msgs, next)
		case op.Batch || len(msgs) > 1:
			return t.publishBatch(ctx, op, msgs, next)
		default:
			return t.publishOne(ctx, cache.get(t, op), msgs, next)
		}
	}
}

// publishOne traces a single publish with one PRODUCER send span whose
// context becomes the message's creation context.
//
// The span starts with the attributes samplers may use, most of them
// built once per destination (st); the message's own facts (id, key,
// size) are added only when the span is recorded. The span takes its
// start and end times from the SDK's clock: passing the metric's times
// would cost an allocation each, for a difference of the time it takes to
// start a span.
func (t *Telemetry) publishOne(ctx context.Context, st *statics, msgs []*broker.Message, next driver.PublishFunc) error {
	start := time.Now()
	op := st.op
	m := msgs[0]
	partition := partitionOf(op, m)

	ctx, span := t.tracer.Start(ctx, st.name, st.startOptions(m.Destination, partition)...)
	if span.IsRecording() && t.hasMessageFacts(op, m) {
		span.SetAttributes(t.appendMessageFacts(make([]attribute.KeyValue, 0, messageFacts), op, m)...)
	}
	t.inject(ctx, &m.Headers)

	err := next(ctx, op, msgs)

	end := time.Now()
	var et attribute.KeyValue
	if err != nil {
		et = errorType(err)
		t.setError(span, err, et)
	} else {
		setStored(span, op, m, partition)
	}
	span.End()
	t.recordPublish(ctx, op, st, msgs, partition, err, et, end.Sub(start))
	return err
}

// setStored records on the span of a sent Kafka message where the
// transport reports it was stored (driver.Delivery.Stored): the partition,
// when the balancer chose it and the span does not have it yet, and the
// offset. Metrics keep the partition only when the publisher asked for
// one: the balancer's choice would multiply the send series by the
// partition count.
func setStored(span trace.Span, op driver.Operation, m *broker.Message, partition string) {
	if op.System != systemKafka || !m.Delivery.Stored || !span.IsRecording() {
		return
	}
	offset := semconv.MessagingKafkaOffset(int(m.Delivery.Offset))
	if partition != "" {
		span.SetAttributes(offset)
		return
	}
	span.SetAttributes(semconv.MessagingDestinationPartitionID(strconv.FormatInt(int64(m.Delivery.Partition), 10)), offset)
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
func (t *Telemetry) publishBatch(ctx context.Context, op driver.Operation, msgs []*broker.Message, next driver.PublishFunc) error {
	start := time.Now()
	startTS := trace.WithTimestamp(start) // one option for every span of the batch
	mixed := op.Destination == ""

	var (
		creates []trace.Span
		links   []trace.Link
	)
	if !t.cfg.noCreate {
		creates = make([]trace.Span, len(msgs))
		links = make([]trace.Link, t.linkCount(len(msgs)))
		name := spanName(opCreate, lowDest(op), op.Temporary)
		// One backing array for every create span's attributes and one for
		// every link's: two allocations per batch instead of two per message.
		const perLink = 3
		perCreate := attrCap(op, 6)
		createAttrs := make([]attribute.KeyValue, 0, perCreate*len(msgs))
		linkAttrs := make([]attribute.KeyValue, 0, perLink*len(links))
		for i, m := range msgs {
			partition := partitionOf(op, m)
			kvs := createAttrs[len(createAttrs):len(createAttrs):cap(createAttrs)]
			kvs = appendSystem(kvs, op, opCreate)
			kvs = append(kvs, semconv.MessagingOperationTypeCreate)
			kvs = appendDestination(kvs, op, m.Destination)
			kvs = appendServer(kvs, op)
			kvs = t.appendMessage(kvs, op, m, partition)
			createAttrs = carve(createAttrs, len(kvs))

			cctx, span := t.tracer.Start(ctx, name, kindProducer, trace.WithAttributes(kvs...), startTS)
			t.inject(cctx, &m.Headers)
			creates[i] = span

			if i >= len(links) {
				continue // over the link limit (OTEL_SPAN_LINK_COUNT_LIMIT)
			}
			// Per-message facts go on the link (semconv: batch publishing).
			la := linkAttrs[len(linkAttrs):len(linkAttrs):cap(linkAttrs)]
			if m.ID != "" {
				la = append(la, t.messageID(m.ID))
			}
			if mixed {
				la = append(la, semconv.MessagingDestinationName(m.Destination))
			}
			if partition != "" {
				la = append(la, semconv.MessagingDestinationPartitionID(partition))
			}
			linkAttrs = carve(linkAttrs, len(la))
			links[i] = trace.Link{SpanContext: span.SpanContext(), Attributes: la[:len(la):len(la)]}
		}
	}

	kvs := make([]attribute.KeyValue, 0, attrCap(op, 5)) // system, name, type, destination, count
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
	kind := kindClient
	if creates == nil {
		kind = kindProducer
	}
	sctx, send := t.tracer.Start(ctx, spanName(opSend, lowDest(op), op.Temporary),
		kind,
		trace.WithAttributes(kvs...),
		trace.WithLinks(links...),
		startTS)
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
		t.setError(send, err, et)
		var be broker.BatchError
		if errors.As(err, &be) && len(be) == len(msgs) {
			for i, e := range be {
				if e != nil && creates != nil {
					t.setError(creates[i], e, errorType(e))
				}
			}
		} else {
			// The batch failed as a whole: so did every message in it.
			for _, c := range creates {
				t.setError(c, err, et)
			}
		}
	}
	endTS := trace.WithTimestamp(end)
	for i, c := range creates {
		setStored(c, op, msgs[i], partitionOf(op, msgs[i]))
		c.End(endTS)
	}
	send.End(endTS)
	t.recordPublish(sctx, op, nil, msgs, partition, err, et, end.Sub(start))
	return err
}
