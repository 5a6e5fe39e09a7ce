package natsbroker

import (
	"bytes"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tracebus/tracebus/broker"
)

// coreMessage turns a core NATS message into the copy handed to a handler
// on delivery attempt. The body is copied: a core message is retried in
// place, so the handler of one attempt must not see what the handler of an
// earlier one did to it.
func coreMessage(m *natsgo.Msg, spec *broker.SubscriptionSpec, attempt int) *broker.Message {
	return &broker.Message{
		Destination: m.Subject,
		Body:        bytes.Clone(m.Data),
		Headers:     brokerHeaders(m.Header),
		ID:          m.Header.Get(natsgo.MsgIdHdr),
		ReplyTo:     m.Reply,
		Delivery: broker.Delivery{
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
// transport: it comes from the broker.HeaderReplyTo header a request
// published through JetStream carries.
func jetStreamMessage(m jetstream.Msg, spec *broker.SubscriptionSpec) *broker.Message {
	h := m.Headers()
	bm := &broker.Message{
		Destination: m.Subject(),
		Body:        m.Data(),
		Headers:     brokerHeaders(h),
		ID:          h.Get(natsgo.MsgIdHdr),
		ReplyTo:     h.Get(broker.HeaderReplyTo),
		Delivery: broker.Delivery{
			Subscription:  spec.Destination,
			Group:         spec.Group,
			DeliveryCount: 1,
		},
	}
	// Metadata comes from the acknowledgement subject; if the server sent
	// one we cannot parse, the message is still delivered, without facts.
	if md, err := m.Metadata(); err == nil {
		bm.Delivery.Sequence = md.Sequence.Stream
		bm.Delivery.ConsumerSequence = md.Sequence.Consumer
		bm.Delivery.DeliveryCount = max(1, int(min(md.NumDelivered, 1<<31-1)))
		bm.Delivery.Timestamp = md.Timestamp
		bm.Delivery.Stream = md.Stream
		bm.Delivery.Consumer = md.Consumer
	}
	return bm
}
