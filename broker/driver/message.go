package driver

import (
	"bytes"
	"time"
)

// Message is one message on its way to or from a broker.
//
// On publish, the caller fills Destination, Body and optionally Key, Headers,
// ID, ReplyTo and Partition. Publish may add headers (trace context, baggage)
// to the message, so a Message must not be used by another goroutine while it
// is being published.
//
// On consume, the transport fills the same fields plus the delivery facts it
// knows (Partition, Offset, Sequence, DeliveryCount, Timestamp, Group, ...).
// A consumed Message belongs to the handler for the duration of the call; it
// must not be retained after the handler returns unless it is cloned.
type Message struct {
	// Destination is the NATS subject or Kafka topic.
	Destination string
	// Key is the Kafka record key; nil means no key. NATS ignores it.
	Key []byte
	// Body is the payload. A nil Body with a non-nil Key is a Kafka tombstone.
	Body []byte
	// Headers are the message headers.
	Headers Headers
	// ID identifies the message. On publish, a message without one gets a
	// unique id, written here, so that spans and logs on both sides name
	// it; the transport carries it (NATS: the Nats-Msg-Id header, which
	// JetStream de-duplicates by; Kafka: the HeaderMessageID header). A
	// Message published again with its ID is a retry of the same message,
	// which JetStream drops as a duplicate within the stream's duplicate
	// window: to send another message, use a new Message or clear ID. On
	// consume it is filled when the transport knows one.
	ID string
	// ReplyTo is the NATS reply subject: on publish the subject replies
	// should go to, on consume the subject the sender waits on.
	ReplyTo string
	// Partition, when non-nil on publish, asks a partitioned transport
	// (Kafka) to write the message to that partition instead of choosing one
	// by key. On consume it is nil; see Delivery.Partition.
	Partition *int32

	// Delivery holds the facts a transport records when it delivers the
	// message to a handler. It is not read on publish; a transport that
	// learns where a published message was stored reports it here (see
	// Delivery.Stored).
	Delivery Delivery
}

// Delivery describes how a consumed message was delivered. Fields a
// transport does not know are left at their zero value.
type Delivery struct {
	// Subscription is the destination pattern the subscription was made
	// with, e.g. "orders.*" for a NATS wildcard subscription. It is low
	// cardinality, unlike Message.Destination.
	Subscription string
	// Group is the consumer group (Kafka) or queue group (NATS).
	Group string
	// Partition is the Kafka partition the message was read from.
	Partition int32
	// Offset is the Kafka offset of the message.
	Offset int64
	// Sequence is the JetStream stream sequence or the memory transport's
	// per-destination sequence.
	Sequence uint64
	// ConsumerSequence is the JetStream consumer sequence.
	ConsumerSequence uint64
	// DeliveryCount is 1 on the first delivery and grows with every
	// redelivery or in-place retry of the same message.
	DeliveryCount int
	// Timestamp is when the broker stored the message, if known.
	Timestamp time.Time
	// Stream and Consumer name the JetStream stream and consumer.
	Stream, Consumer string
	// Bucket names the NATS key-value or object store bucket of a watch
	// subscription's update (natsbroker.WatchKV, natsbroker.WatchObjects).
	Bucket string
	// Deleted marks an update that removed its key or object (a delete or
	// a purge): the message has no Body, and typed handlers get the zero
	// value of their type instead of a decode error.
	Deleted bool
	// Stored is set on a published message by a transport that reports
	// where the broker stored it: then Partition and Offset (Kafka) hold
	// the partition the message went to, whether asked for or chosen by
	// the balancer, and its offset. Telemetry records them on the send
	// span.
	Stored bool
}

// Clone returns a deep copy of m: the copy shares no slices with m.
func (m *Message) Clone() *Message {
	c := *m
	c.Key = bytes.Clone(m.Key)
	c.Body = bytes.Clone(m.Body)
	c.Headers = m.Headers.Clone()
	if m.Partition != nil {
		p := *m.Partition
		c.Partition = &p
	}
	return &c
}
