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

// WrapSettle implements driver.SettleMiddleware. Without WithSettleSpans it
// returns next unchanged, so settlement costs nothing extra.
//
// The settle span is a CLIENT span, child of the process span (the broker
// settles with the handler's ctx), named after the system's operation: "ack
// {destination}" for NATS and memory, "commit {topic}" for Kafka, and "nak"
// or "term" for the other outcomes. Its duration is recorded in
// messaging.client.operation.duration with operation type settle.
func (t *Telemetry) WrapSettle(next driver.SettleFunc) driver.SettleFunc {
	if !t.cfg.settle {
		return next
	}
	return func(ctx context.Context, op driver.Operation, msgs []*broker.Message, s driver.Settlement) error {
		if len(msgs) == 0 {
			return next(ctx, op, msgs, s)
		}
		return t.settle(ctx, op, msgs, s, next)
	}
}

func (t *Telemetry) settle(ctx context.Context, op driver.Operation, msgs []*broker.Message, s driver.Settlement, next driver.SettleFunc) error {
	start := time.Now()
	name := settleName(op, s)
	batch := op.Batch || len(msgs) > 1
	dest := commonDestination(msgs)
	if dest == "" && !batch {
		dest = op.Destination
	}
	partition := commonPartition(op, msgs)

	kvs := make([]attribute.KeyValue, 0, attrCap(op, 7)) // system, name, type, destination, template, id, count
	kvs = appendSystem(kvs, op, name)
	kvs = append(kvs, semconv.MessagingOperationTypeSettle)
	kvs = appendDestination(kvs, op, dest)
	kvs = appendServer(kvs, op)
	kvs = appendSubscriber(kvs, op)
	kvs = appendClientID(kvs, op)
	if batch {
		if partition != "" {
			kvs = append(kvs, semconv.MessagingDestinationPartitionID(partition))
		}
		kvs = append(kvs, semconv.MessagingBatchMessageCount(len(msgs)))
	} else {
		kvs = t.appendMessage(kvs, op, msgs[0], partition)
	}

	sctx, span := t.tracer.Start(ctx, spanName(name, op.Destination, op.Temporary),
		kindClient,
		trace.WithAttributes(kvs...),
		trace.WithTimestamp(start))

	err := next(sctx, op, msgs, s)

	end, et := t.endSpan(span, err)

	t.recordSettle(sctx, op, name, dest, partition, et, end.Sub(start))
	return err
}

// settleName is the operation name of a settlement: the system's name for a
// successful one (Operation.OperationName: "ack", "commit"), else the
// action's ("nak", "term").
func settleName(op driver.Operation, s driver.Settlement) string {
	if s.Action == driver.Ack || s.Action == 0 {
		if op.OperationName != "" {
			return op.OperationName
		}
		return opAck
	}
	return s.Action.String()
}
