package middleware

import (
	"sync"
	"sync/atomic"

	"github.com/tracebus/tracebus/broker/driver"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// statics is what every single-message span of one operation shares: its
// name, the attributes that do not depend on the message, and the metric
// attribute sets of a success. A subscription's operation is the same on
// every delivery and a publisher's on every publish to one destination, so
// statics are built once per operation, not per message.
type statics struct {
	op     driver.Operation
	opName string // messaging.operation.name
	name   string // span name
	// head (system, operation name and type) and tail (server, consumer
	// group, subscription, client id) surround the destination attributes,
	// which depend on the message when a subscription's pattern matched
	// another subject.
	head, tail []attribute.KeyValue
	// all is head, the destination attributes of a message whose
	// destination is op.Destination, and tail; start is all as a span
	// start option.
	all   []attribute.KeyValue
	start trace.SpanStartOption
	// opts are the span kind and start, the options of a span of the
	// common case, as the slice Start takes: built per span, that slice
	// would be an allocation.
	opts []trace.SpanStartOption
	// ok are the metric sets of a success without partition for that
	// destination.
	ok *pointSets
}

func (t *Telemetry) newStatics(op driver.Operation, name string) *statics {
	s := &statics{op: op, opName: name, name: spanName(name, lowDest(op), op.Temporary)}
	s.head = appendSystem(make([]attribute.KeyValue, 0, 3), op, name)
	switch op.Kind {
	case driver.OpPublish:
		s.head = append(s.head, semconv.MessagingOperationTypeSend)
	default:
		s.head = append(s.head, semconv.MessagingOperationTypeProcess)
	}
	s.tail = appendServer(nil, op)
	if op.Kind != driver.OpPublish {
		s.tail = appendSubscriber(s.tail, op)
	}
	s.tail = appendClientID(s.tail, op)
	s.all = make([]attribute.KeyValue, 0, len(s.head)+2+len(s.tail))
	s.all = append(s.all, s.head...)
	s.all = appendDestination(s.all, op, op.Destination)
	s.all = append(s.all, s.tail...)
	s.start = trace.WithAttributes(s.all...)
	kind := kindConsumer
	if op.Kind == driver.OpPublish {
		kind = kindProducer
	}
	s.opts = []trace.SpanStartOption{kind, s.start}
	s.ok = t.sets.sets(metricKey(op, name, op.Destination, "", attribute.KeyValue{}))
	return s
}

// startAttrs returns the attributes a span of one message to or from
// concrete, in partition, gets at its start: those samplers may use
// (semconv: system, operation, destination, partition, server, group).
// The common case, the operation's own destination without partition,
// allocates nothing.
func (s *statics) startAttrs(concrete, partition string) trace.SpanStartOption {
	if concrete == s.op.Destination && partition == "" {
		return s.start
	}
	kvs := make([]attribute.KeyValue, 0, len(s.all)+2)
	kvs = append(kvs, s.head...)
	kvs = appendDestination(kvs, s.op, concrete)
	if partition != "" {
		kvs = append(kvs, semconv.MessagingDestinationPartitionID(partition))
	}
	kvs = append(kvs, s.tail...)
	return trace.WithAttributes(kvs...)
}

// startOptions returns the options of a span of one message to or from
// concrete, in partition: the kind and startAttrs, followed by more.
func (s *statics) startOptions(concrete, partition string, more ...trace.SpanStartOption) []trace.SpanStartOption {
	if concrete == s.op.Destination && partition == "" && len(more) == 0 {
		return s.opts
	}
	return append([]trace.SpanStartOption{s.opts[0], s.startAttrs(concrete, partition)}, more...)
}

// pointSets returns the metric sets of a point for concrete, partition
// and et, from the statics when they are the common ones.
func (s *statics) pointSets(t *Telemetry, concrete, partition string, et attribute.KeyValue) *pointSets {
	if concrete == s.op.Destination && partition == "" && !et.Valid() {
		return s.ok
	}
	return t.sets.sets(metricKey(s.op, s.opName, concrete, partition, et))
}

// maxCachedStatics bounds a staticsCache, for the same reason as
// maxCachedSets: a publisher to per-entity destinations must not make it
// grow without end.
const maxCachedStatics = 1024

// staticsCache holds the statics of the operations one middleware closure
// sees. The last one used is checked first, with a comparison rather than
// a hash: a subscription sees one operation, and a publisher usually
// publishes to the same destination many times in a row.
type staticsCache struct {
	name string // operation name: opSend or opProcess
	last atomic.Pointer[statics]
	m    sync.Map // driver.Operation → *statics
	n    atomic.Int32
}

func (c *staticsCache) get(t *Telemetry, op driver.Operation) *statics {
	if s := c.last.Load(); s != nil && s.op == op {
		return s
	}
	if v, ok := c.m.Load(op); ok {
		s := v.(*statics)
		c.last.Store(s)
		return s
	}
	s := t.newStatics(op, c.name)
	if c.n.Load() < maxCachedStatics {
		if v, loaded := c.m.LoadOrStore(op, s); loaded {
			s = v.(*statics)
		} else {
			c.n.Add(1)
		}
	}
	c.last.Store(s)
	return s
}
