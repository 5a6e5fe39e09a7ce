package middleware

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelbaggage "go.opentelemetry.io/otel/baggage"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/internal/baggagehook"
)

// WrapConsume implements driver.Middleware: it extracts each message's
// creation context and baggage, runs the handler inside a process span and
// records the process metrics.
func (t *Telemetry) WrapConsume(next driver.ConsumeFunc) driver.ConsumeFunc {
	// WrapConsume runs once per subscription, whose operation is the same
	// on every delivery: its statics are built on the first.
	cache := &staticsCache{name: opProcess}
	return func(ctx context.Context, op driver.Operation, msgs []*broker.Message) error {
		switch {
		case op.Kind == driver.OpReceive:
			return t.receive(ctx, op, msgs, next)
		case len(msgs) == 0:
			return next(ctx, op, msgs)
		case op.Batch || len(msgs) > 1:
			return t.consumeBatch(ctx, op, msgs, next)
		default:
			return t.consumeOne(ctx, cache.get(t, op), msgs, next)
		}
	}
}

// deliveryAttemptKey is the attribute of a process span (and, in a batch,
// of each message's link) that counts the deliveries of the message: 1 for
// the first, 2 for the first retry, and so on, from
// driver.Delivery.DeliveryCount. It tells a failed attempt from its retry in
// a trace view. The semantic conventions have no generic attribute for it
// (only messaging.gcp_pubsub.message.delivery_attempt), hence the tracebus
// namespace. It is left out when the transport does not count deliveries.
const deliveryAttemptKey = attribute.Key("tracebus.delivery.attempt")

// consumeOne runs the handler of one message inside a CONSUMER process span.
//
// By default the span is a child of the message's creation context, so a
// flow of single messages reads as one trace in Jaeger: send → process →
// send → process. The semantic conventions allow this for single messages
// and ask to link the ambient context then, which we do when the delivery
// context holds a span. With WithLinkedProcessSpans the span is instead a
// new root that links to the creation context.
//
// As on publish, the span starts with the attributes samplers may use and
// gets the message's own facts only when it is recorded.
func (t *Telemetry) consumeOne(ctx context.Context, st *statics, msgs []*broker.Message, next driver.ConsumeFunc) error {
	start := time.Now()
	op := st.op
	m := msgs[0]
	remote, bag := t.extract(&m.Headers)
	dest := m.Destination
	if dest == "" {
		dest = op.Destination
	}
	partition := partitionOf(op, m)

	var span trace.Span
	hctx := ctx
	switch {
	case !remote.IsValid():
		// Nothing (usable) came with the message: the ambient context,
		// usually none, is the parent.
		hctx, span = t.tracer.Start(ctx, st.name, st.startOptions(dest, partition)...)
	case t.cfg.linkProcess:
		hctx, span = t.tracer.Start(ctx, st.name, st.startOptions(dest, partition,
			trace.WithNewRoot(), trace.WithLinks(trace.Link{SpanContext: remote}))...)
	default:
		parent := trace.ContextWithRemoteSpanContext(ctx, remote)
		if ambient := trace.SpanContextFromContext(ctx); ambient.IsValid() {
			hctx, span = t.tracer.Start(parent, st.name, st.startOptions(dest, partition,
				trace.WithLinks(trace.Link{SpanContext: ambient}))...)
		} else {
			hctx, span = t.tracer.Start(parent, st.name, st.startOptions(dest, partition)...)
		}
	}
	if span.IsRecording() && (m.Delivery.DeliveryCount > 0 || t.hasMessageFacts(op, m)) {
		kvs := t.appendMessageFacts(make([]attribute.KeyValue, 0, messageFacts+1), op, m)
		if m.Delivery.DeliveryCount > 0 {
			kvs = append(kvs, deliveryAttemptKey.Int(m.Delivery.DeliveryCount))
		}
		span.SetAttributes(kvs...)
	}
	hctx = baggagehook.ContextWithDelivery(hctx, []otelbaggage.Baggage{bag}, op.Batch)

	// The sets of a success serve the in-flight count, whose +1 and -1
	// must go to one point, and the process metrics of a success.
	ok := st.pointSets(t, dest, partition, attribute.KeyValue{})
	if t.outcomes.inflight.Enabled(ctx) {
		t.outcomes.inflight.Add(ctx, 1, ok.plainAdd...)
		// Deferred: a middleware inside that panics must not leave the
		// message counted.
		defer t.outcomes.inflight.Add(ctx, -1, ok.plainAdd...)
	}

	err := next(hctx, op, msgs)

	end, et := t.endSpan(span, err)
	t.recordProcess(hctx, op, ok, dest, partition, len(msgs), et, end.Sub(start))
	return err
}

// consumeBatch runs a batch handler inside one CONSUMER process span whose
// parent is the ambient context (a batch has no single creation context)
// and which links to every message's creation context, each link carrying
// that message's id, destination, partition and offset, up to the link
// limit (OTEL_SPAN_LINK_COUNT_LIMIT, default 128). Messages without a creation context get no
// link: there is nothing to point to.
func (t *Telemetry) consumeBatch(ctx context.Context, op driver.Operation, msgs []*broker.Message, next driver.ConsumeFunc) error {
	start := time.Now()
	dest := commonDestination(msgs)
	partition := commonPartition(op, msgs)
	kafka := op.System == systemKafka

	bags := make([]otelbaggage.Baggage, len(msgs))
	links := make([]trace.Link, 0, t.linkCount(len(msgs)))
	const perLink = 5
	linkAttrs := make([]attribute.KeyValue, 0, perLink*cap(links))
	for i, m := range msgs {
		var sc trace.SpanContext
		sc, bags[i] = t.extract(&m.Headers)
		if !sc.IsValid() || len(links) == cap(links) {
			continue // nothing to point to, or over the link limit
		}
		la := linkAttrs[len(linkAttrs):len(linkAttrs):cap(linkAttrs)]
		if m.ID != "" {
			la = append(la, t.messageID(m.ID))
		}
		if dest == "" {
			la = append(la, semconv.MessagingDestinationName(m.Destination))
		}
		if kafka {
			if partition == "" {
				la = append(la, semconv.MessagingDestinationPartitionID(partitionOf(op, m)))
			}
			la = append(la, semconv.MessagingKafkaOffset(int(m.Delivery.Offset)))
		}
		if m.Delivery.DeliveryCount > 0 {
			la = append(la, deliveryAttemptKey.Int(m.Delivery.DeliveryCount))
		}
		linkAttrs = carve(linkAttrs, len(la))
		links = append(links, trace.Link{SpanContext: sc, Attributes: la[:len(la):len(la)]})
	}

	kvs := consumerAttrs(op, opProcess, semconv.MessagingOperationTypeProcess, dest, partition)
	kvs = append(kvs, semconv.MessagingBatchMessageCount(len(msgs)))

	hctx, span := t.tracer.Start(ctx, spanName(opProcess, op.Destination, op.Temporary),
		kindConsumer,
		trace.WithAttributes(kvs...),
		trace.WithLinks(links...),
		trace.WithTimestamp(start))
	hctx = baggagehook.ContextWithDelivery(hctx, bags, op.Batch)

	ok := t.sets.sets(metricKey(op, opProcess, dest, partition, attribute.KeyValue{}))
	if n := int64(len(msgs)); t.outcomes.inflight.Enabled(ctx) {
		t.outcomes.inflight.Add(ctx, n, ok.plainAdd...)
		defer t.outcomes.inflight.Add(ctx, -n, ok.plainAdd...)
	}

	err := next(hctx, op, msgs)

	end, et := t.endSpan(span, err)
	t.recordProcess(hctx, op, ok, dest, partition, len(msgs), et, end.Sub(start))
	return err
}

// consumerAttrs returns the start attributes of a span on the consuming
// side built per call (a batch's process span, a receive span): system,
// operation name and type, destination (and template), partition, server,
// consumer group and subscription, client id; with room for a batch count.
func consumerAttrs(op driver.Operation, name string, typ attribute.KeyValue, dest, partition string) []attribute.KeyValue {
	kvs := make([]attribute.KeyValue, 0, attrCap(op, 6)) // system, name, type, destination, template, count
	kvs = appendSystem(kvs, op, name)
	kvs = append(kvs, typ)
	kvs = appendDestination(kvs, op, dest)
	if partition != "" {
		kvs = append(kvs, semconv.MessagingDestinationPartitionID(partition))
	}
	kvs = appendServer(kvs, op)
	kvs = appendSubscriber(kvs, op)
	return appendClientID(kvs, op)
}
