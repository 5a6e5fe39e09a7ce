package middleware

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
)

// Operation names (messaging.operation.name) of the spans tracebus starts.
// Settle spans take theirs from driver.Operation.OperationName.
const (
	opCreate  = "create"
	opSend    = "send"
	opProcess = "process"
	opAck     = "ack"
)

// Span kinds as start options, made once: an option built per span is an
// allocation per message.
var (
	kindProducer = trace.WithSpanKind(trace.SpanKindProducer)
	kindConsumer = trace.WithSpanKind(trace.SpanKindConsumer)
	kindClient   = trace.WithSpanKind(trace.SpanKindClient)
)

// systemKafka is the messaging.system of the one partitioned system tracebus
// speaks; partitions, offsets, keys and tombstones are Kafka notions.
const systemKafka = "kafka"

// spanName is "{operation} {destination}", or the operation alone when the
// destination is unknown (a batch across destinations) or temporary (a reply
// inbox): a span name must stay low-cardinality.
func spanName(operation, destination string, temporary bool) string {
	if destination == "" || temporary {
		return operation
	}
	return operation + " " + destination
}

// lowDest is the low-cardinality destination of op, which span names and
// metrics use: a publish's template when its destinations were filled
// from one, op.Destination otherwise.
func lowDest(op driver.Operation) string {
	if op.Template != "" {
		return op.Template
	}
	return op.Destination
}

// attrCap bounds the number of attributes a span or metric point of op
// gets, so that its slice is allocated once and not much larger than needed:
// an attribute.KeyValue is 64 bytes, and allocation is most of what
// telemetry costs per message. fixed counts the attributes that do not
// depend on op.
func attrCap(op driver.Operation, fixed int) int {
	n := fixed
	if op.ServerAddress != "" {
		n += 2
	}
	if op.ClientID != "" {
		n++
	}
	if op.Group != "" {
		n++
	}
	if op.Subscription != "" {
		n++
	}
	if op.Temporary {
		n++
	}
	if op.Template != "" {
		n++
	}
	if op.System == systemKafka {
		n += 4 // partition, key, offset, tombstone
	}
	return n
}

// carve marks n more elements of the shared backing array buf as used,
// after they were appended to buf[len(buf):len(buf):cap(buf)]. Batches
// give every span or link a slice of one array (one allocation per batch,
// not per message); should a slice have outgrown its share, append moved it
// elsewhere and carve only keeps the bounds valid.
func carve(buf []attribute.KeyValue, n int) []attribute.KeyValue {
	return buf[:min(len(buf)+n, cap(buf))]
}

// appendSystem appends the attributes every span and metric point has:
// messaging.system and messaging.operation.name.
func appendSystem(kvs []attribute.KeyValue, op driver.Operation, name string) []attribute.KeyValue {
	return append(kvs, semconv.MessagingSystemKey.String(op.System), semconv.MessagingOperationName(name))
}

// appendServer appends server.address and server.port when known.
func appendServer(kvs []attribute.KeyValue, op driver.Operation) []attribute.KeyValue {
	if op.ServerAddress != "" {
		kvs = append(kvs, semconv.ServerAddress(op.ServerAddress))
		if op.ServerPort > 0 {
			kvs = append(kvs, semconv.ServerPort(op.ServerPort))
		}
	}
	return kvs
}

// appendClientID appends messaging.client.id when known (send, process and
// settle spans; not create spans).
func appendClientID(kvs []attribute.KeyValue, op driver.Operation) []attribute.KeyValue {
	if op.ClientID != "" {
		kvs = append(kvs, semconv.MessagingClientID(op.ClientID))
	}
	return kvs
}

// appendSubscriber appends the consumer group and subscription name of a
// consume or settle operation.
func appendSubscriber(kvs []attribute.KeyValue, op driver.Operation) []attribute.KeyValue {
	if op.Group != "" {
		kvs = append(kvs, semconv.MessagingConsumerGroupName(op.Group))
	}
	if op.Subscription != "" {
		kvs = append(kvs, semconv.MessagingDestinationSubscriptionName(op.Subscription))
	}
	return kvs
}

// appendDestination appends messaging.destination.name (the concrete
// destination, when one applies to every message), the template (the
// subscription pattern, when it differs, or the publisher's template) and messaging.destination.temporary.
func appendDestination(kvs []attribute.KeyValue, op driver.Operation, concrete string) []attribute.KeyValue {
	if concrete != "" {
		kvs = append(kvs, semconv.MessagingDestinationName(concrete))
	}
	switch {
	case op.Template != "":
		kvs = append(kvs, semconv.MessagingDestinationTemplate(op.Template))
	case op.Kind != driver.OpPublish && op.Destination != "" && op.Destination != concrete:
		kvs = append(kvs, semconv.MessagingDestinationTemplate(op.Destination))
	}
	if op.Temporary {
		kvs = append(kvs, semconv.MessagingDestinationTemporary(true))
	}
	return kvs
}

// partitionOf returns the partition id of m, or "" when there is none: only
// Kafka has partitions; on publish, only a message that asks for one has it.
func partitionOf(op driver.Operation, m *broker.Message) string {
	if op.System != systemKafka {
		return ""
	}
	if op.Kind == driver.OpPublish {
		if m.Partition == nil {
			return ""
		}
		return strconv.FormatInt(int64(*m.Partition), 10)
	}
	return strconv.FormatInt(int64(m.Delivery.Partition), 10)
}

// commonPartition returns the partition shared by every message, or "".
func commonPartition(op driver.Operation, msgs []*broker.Message) string {
	if op.System != systemKafka || len(msgs) == 0 {
		return ""
	}
	p := partitionOf(op, msgs[0])
	for _, m := range msgs[1:] {
		if p == "" || partitionOf(op, m) != p {
			return ""
		}
	}
	return p
}

// commonDestination returns the concrete destination shared by every
// message, or "".
func commonDestination(msgs []*broker.Message) string {
	if len(msgs) == 0 {
		return ""
	}
	d := msgs[0].Destination
	for _, m := range msgs[1:] {
		if m.Destination != d {
			return ""
		}
	}
	return d
}

// appendMessage appends the attributes of a span that covers exactly one
// message: partition, message id, Kafka key, offset and tombstone, and the
// body size when asked for.
func (t *Telemetry) appendMessage(kvs []attribute.KeyValue, op driver.Operation, m *broker.Message, partition string) []attribute.KeyValue {
	if partition != "" {
		kvs = append(kvs, semconv.MessagingDestinationPartitionID(partition))
	}
	return t.appendMessageFacts(kvs, op, m)
}

// hasMessageFacts reports whether appendMessageFacts appends anything for
// m, so that nothing is allocated when it would not.
func (t *Telemetry) hasMessageFacts(op driver.Operation, m *broker.Message) bool {
	return m.ID != "" || op.System == systemKafka || (t.cfg.bodySize && op.Kind != driver.OpSettle)
}

// messageFacts is the most attributes appendMessageFacts appends.
const messageFacts = 5

// appendMessageFacts appends the attributes of appendMessage that samplers
// do not use (everything but the partition): a span that is not recorded
// does not need them built.
func (t *Telemetry) appendMessageFacts(kvs []attribute.KeyValue, op driver.Operation, m *broker.Message) []attribute.KeyValue {
	if m.ID != "" {
		kvs = append(kvs, t.messageID(m.ID))
	}
	if op.System == systemKafka {
		// The key's string form; a key that is not text has no canonical
		// one, and semconv then says to leave the attribute out. Only the
		// capped prefix is copied into a string.
		if m.Key != nil && utf8.Valid(m.Key) {
			kvs = append(kvs, semconv.MessagingKafkaMessageKey(string(capUTF8(m.Key, t.cfg.attrLimit))))
		}
		if op.Kind != driver.OpPublish {
			kvs = append(kvs, semconv.MessagingKafkaOffset(int(m.Delivery.Offset)))
		}
		if m.Body == nil && m.Key != nil {
			kvs = append(kvs, semconv.MessagingKafkaMessageTombstone(true))
		}
	}
	if t.cfg.bodySize && op.Kind != driver.OpSettle {
		kvs = append(kvs, semconv.MessagingMessageBodySize(len(m.Body)))
	}
	return kvs
}

// linkCount is how many of n messages get a link on a batch span.
func (t *Telemetry) linkCount(n int) int {
	if t.cfg.linkLimit > 0 {
		return min(n, t.cfg.linkLimit)
	}
	return n
}

// messageID is messaging.message.id with id capped (see
// WithMessageAttributeLimit). A capped id is copied: the prefix alone, as a
// substring, would keep the sender's whole id alive for as long as the span
// waits in the exporter's queue, which with a dead collector is the queue's
// length times the size the sender chose.
func (t *Telemetry) messageID(id string) attribute.KeyValue {
	capped := capUTF8(id, t.cfg.attrLimit)
	if len(capped) < len(id) {
		capped = strings.Clone(capped)
	}
	return semconv.MessagingMessageID(capped)
}

// capUTF8 returns the longest prefix of b of at most n bytes that does not
// end inside a UTF-8 character; all of b when n <= 0 or b is short enough.
func capUTF8[T ~string | ~[]byte](b T, n int) T {
	if n <= 0 || len(b) <= n {
		return b
	}
	cut := n
	// Step back over continuation bytes to the start of the character
	// the cut falls in, unless that character ends exactly at n.
	for cut > 0 && cut > n-utf8.UTFMax && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return b[:cut]
}

// setError marks span as failed: status Error with the message and
// error.type. The error is not recorded as an event as well; the status
// already says it all.
func (t *Telemetry) setError(span trace.Span, err error, et attribute.KeyValue) {
	// The text is err.Error(): a handler's error arrives with the text
	// broker.WithErrorText gives it.
	span.SetStatus(codes.Error, err.Error())
	span.SetAttributes(et)
}
