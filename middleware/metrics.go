package middleware

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
)

// pointKey holds everything the attribute set of a metric point is built
// from. Equal keys give equal sets, so sets are built once per key and
// cached (see setCache): building one (sort, hash, copy) costs as much as
// the rest of the metric recording.
type pointKey struct {
	kind                                   driver.OperationKind
	system, name, dest, partition, errType string
	addr, group, subscription              string
	port                                   int
	// template: dest is the subscription's pattern, recorded as
	// messaging.destination.template, because the concrete destination it
	// matched may be high-cardinality.
	template bool
	// reason is the dropReasonKey of a dropped-messages point.
	reason string
}

// metricKey returns the key of a point for op. concrete is the destination
// shared by the messages ("" when they differ), partition their shared
// partition, et the error type (zero on success).
//
// semconv wants messaging.destination.name on metrics only when it is
// low-cardinality: the operation's destination on publish (a reply inbox
// excluded), on consume and settle the subscription's destination when the
// messages came from it literally, and the template otherwise (also a
// publisher's template).
func metricKey(op driver.Operation, name, concrete, partition string, et attribute.KeyValue) pointKey {
	k := pointKey{
		kind: op.Kind, system: op.System, name: name, partition: partition,
		addr: op.ServerAddress, port: op.ServerPort,
	}
	if op.Kind != driver.OpPublish {
		k.group, k.subscription = op.Group, op.Subscription
	}
	if et.Valid() {
		k.errType = et.Value.AsString()
	}
	switch {
	case op.Template != "":
		k.dest, k.template = op.Template, true
	case !op.Temporary && op.Destination != "":
		k.dest = op.Destination
		k.template = op.Kind != driver.OpPublish && concrete != op.Destination
	}
	return k
}

// attrs returns the point's attributes; withType adds
// messaging.operation.type, which messaging.client.operation.duration has
// and the other metrics have not.
func (k pointKey) attrs(withType bool) []attribute.KeyValue {
	kvs := make([]attribute.KeyValue, 0, 12)
	kvs = append(kvs, semconv.MessagingSystemKey.String(k.system), semconv.MessagingOperationName(k.name))
	switch {
	case k.dest == "":
	case k.template:
		kvs = append(kvs, semconv.MessagingDestinationTemplate(k.dest))
	default:
		kvs = append(kvs, semconv.MessagingDestinationName(k.dest))
	}
	if k.partition != "" {
		kvs = append(kvs, semconv.MessagingDestinationPartitionID(k.partition))
	}
	if k.addr != "" {
		kvs = append(kvs, semconv.ServerAddress(k.addr))
		if k.port > 0 {
			kvs = append(kvs, semconv.ServerPort(k.port))
		}
	}
	if k.group != "" {
		kvs = append(kvs, semconv.MessagingConsumerGroupName(k.group))
	}
	if k.subscription != "" {
		kvs = append(kvs, semconv.MessagingDestinationSubscriptionName(k.subscription))
	}
	if k.errType != "" {
		kvs = append(kvs, semconv.ErrorTypeKey.String(k.errType))
	}
	if k.reason != "" {
		kvs = append(kvs, dropReasonKey.String(k.reason))
	}
	if withType {
		switch k.kind {
		case driver.OpPublish:
			kvs = append(kvs, semconv.MessagingOperationTypeSend)
		case driver.OpSettle:
			kvs = append(kvs, semconv.MessagingOperationTypeSettle)
		case driver.OpReceive:
			kvs = append(kvs, semconv.MessagingOperationTypeReceive)
		default:
			kvs = append(kvs, semconv.MessagingOperationTypeProcess)
		}
	}
	return kvs
}

// pointSets are a point's attribute sets without and with the operation
// type, wrapped once in the option slices the instruments take: the
// messagingconv helpers would wrap them again on every recording.
type pointSets struct {
	plainRecord, typedRecord []metric.RecordOption
	plainAdd                 []metric.AddOption
}

func newPointSets(k pointKey) *pointSets {
	plain := metric.WithAttributeSet(attribute.NewSet(k.attrs(false)...))
	typed := metric.WithAttributeSet(attribute.NewSet(k.attrs(true)...))
	return &pointSets{
		plainRecord: []metric.RecordOption{plain},
		typedRecord: []metric.RecordOption{typed},
		plainAdd:    []metric.AddOption{plain},
	}
}

// maxCachedSets bounds a Telemetry's set cache. Destinations, partitions
// and error types are low-cardinality in a well-behaved application; an
// application publishing to per-entity subjects is not, and must not make
// the cache grow without end. Past the bound, sets are built per recording,
// which is correct, only slower.
const maxCachedSets = 1024

// setCache maps point keys to their attribute sets. sync.Map suits it: keys
// are written once and read on every message from many goroutines.
type setCache struct {
	m sync.Map // pointKey → *pointSets
	n atomic.Int32
}

func (c *setCache) sets(k pointKey) *pointSets {
	if v, ok := c.m.Load(k); ok {
		return v.(*pointSets)
	}
	ps := newPointSets(k)
	if c.n.Load() < maxCachedSets {
		if _, loaded := c.m.LoadOrStore(k, ps); !loaded {
			c.n.Add(1)
		}
	}
	return ps
}

// recordPublish records messaging.client.operation.duration (one point per
// publish call) and messaging.client.sent.messages (every message the call
// attempted; the failed ones of a BatchError with their own error.type).
//
// st, when not nil, holds the sets of op's destination.
func (t *Telemetry) recordPublish(ctx context.Context, op driver.Operation, st *statics, msgs []*broker.Message,
	partition string, err error, et attribute.KeyValue, d time.Duration,
) {
	if !t.opDuration.Enabled(ctx) && !t.sent.Enabled(ctx) {
		return // a no-op meter: build nothing
	}
	var ps *pointSets
	if st != nil {
		ps = st.pointSets(t, op.Destination, partition, et)
	} else {
		ps = t.sets.sets(metricKey(op, opSend, op.Destination, partition, et))
	}
	t.opDuration.Inst().Record(ctx, d.Seconds(), ps.typedRecord...)

	var be broker.BatchError
	if err == nil || !errors.As(err, &be) || len(be) != len(msgs) {
		t.sent.Inst().Add(ctx, int64(len(msgs)), ps.plainAdd...)
		return
	}
	sent := 0
	for _, e := range be {
		if e == nil {
			sent++
			continue
		}
		t.sent.Inst().Add(ctx, 1, t.sets.sets(metricKey(op, opSend, op.Destination, partition, errorType(e))).plainAdd...)
	}
	if sent > 0 {
		t.sent.Inst().Add(ctx, int64(sent), t.sets.sets(metricKey(op, opSend, op.Destination, partition, attribute.KeyValue{})).plainAdd...)
	}
}

// recordProcess records messaging.process.duration and
// messaging.client.consumed.messages (unless a receive counted the messages:
// op.Pulled) with one attribute set: semconv gives
// both the same attributes, and counting the consumed messages after the
// handler lets error.type split them by outcome.
//
// ok holds the sets of a success for dest and partition.
func (t *Telemetry) recordProcess(ctx context.Context, op driver.Operation, ok *pointSets, dest, partition string,
	n int, et attribute.KeyValue, d time.Duration,
) {
	if !t.procDuration.Enabled(ctx) && !t.consumed.Enabled(ctx) {
		return
	}
	ps := ok
	if et.Valid() {
		ps = t.sets.sets(metricKey(op, opProcess, dest, partition, et))
	}
	t.procDuration.Inst().Record(ctx, d.Seconds(), ps.plainRecord...)
	if !op.Pulled {
		// A pulled message was counted by its receive.
		t.consumed.Inst().Add(ctx, int64(n), ps.plainAdd...)
	}
}

// recordSettle records messaging.client.operation.duration for a
// settlement, with operation type settle.
func (t *Telemetry) recordSettle(ctx context.Context, op driver.Operation, name, dest, partition string,
	et attribute.KeyValue, d time.Duration,
) {
	if !t.opDuration.Enabled(ctx) {
		return
	}
	t.opDuration.Inst().Record(ctx, d.Seconds(), t.sets.sets(metricKey(op, name, dest, partition, et)).typedRecord...)
}
