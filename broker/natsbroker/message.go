package natsbroker

import (
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
)

// coreDelivery is one attempt at delivering one core message, in one
// allocation: the message, the slice that holds it and its acknowledger,
// and for the first attempt the received message as the slice a retry
// takes.
type coreDelivery struct {
	msg  broker.Message
	msgs [1]*broker.Message
	ack  coreAck
	src  [1]*natsgo.Msg
}

// coreMessage fills bm, the message handed to a handler on delivery
// attempt, from a core NATS message.
//
// The body is nats.go's: it copies every payload out of its read buffer
// into one of the message's own, so no copy is needed for the handler to
// own it. A retry in place (after a Nak) hands the next attempt the same
// buffer, as a redelivery hands it the same bytes: a handler that changes
// Body in place and may be retried must clone it first.
func coreMessage(bm *broker.Message, m *natsgo.Msg, spec *driver.SubscriptionSpec, attempt int) {
	*bm = broker.Message{
		Destination: m.Subject,
		Body:        m.Data,
		Headers:     brokerHeaders(m.Header),
		ID:          m.Header.Get(natsgo.MsgIdHdr),
		ReplyTo:     m.Reply,
		Delivery: driver.Delivery{
			Subscription:  spec.Destination,
			Group:         spec.Group,
			DeliveryCount: attempt,
		},
	}
}

// jetStreamMessage turns a JetStream message into the message handed to a
// handler. The body is not copied: a JetStream delivery is used once, and a
// redelivery arrives as a new message. ReplyTo is not the message's reply
// subject, which is its acknowledgement subject and belongs to the
// transport: it comes from the driver.HeaderReplyTo header a request
// published through JetStream carries.
func jetStreamMessage(m jetstream.Msg, spec *driver.SubscriptionSpec) *broker.Message {
	bm := new(broker.Message)
	md, err := m.Metadata()
	fillJetStreamMessage(bm, m, md, err, spec)
	return bm
}

// fillJetStreamMessage does the work of jetStreamMessage into bm, with the
// message's metadata parsed by the caller (mdErr when it could not be).
func fillJetStreamMessage(bm *broker.Message, m jetstream.Msg, md *jetstream.MsgMetadata, mdErr error, spec *driver.SubscriptionSpec) {
	h := m.Headers()
	*bm = broker.Message{
		Destination: m.Subject(),
		Body:        m.Data(),
		Headers:     brokerHeaders(h),
		ID:          h.Get(natsgo.MsgIdHdr),
		ReplyTo:     h.Get(driver.HeaderReplyTo),
		Delivery: driver.Delivery{
			Subscription:  spec.Destination,
			Group:         spec.Group,
			DeliveryCount: 1,
		},
	}
	// Metadata comes from the acknowledgement subject; if the server sent
	// one we cannot parse, the message is still delivered, without facts.
	if mdErr == nil {
		bm.Delivery.Sequence = md.Sequence.Stream
		bm.Delivery.ConsumerSequence = md.Sequence.Consumer
		bm.Delivery.DeliveryCount = max(1, int(min(md.NumDelivered, 1<<31-1)))
		bm.Delivery.Timestamp = md.Timestamp
		bm.Delivery.Stream = md.Stream
		bm.Delivery.Consumer = md.Consumer
	}
}
