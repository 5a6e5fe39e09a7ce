package driver

import (
	"context"
	"time"
)

// Operation is the neutral description of one publish, consume or settle
// that middleware sees. The broker builds it from the transport's Info and
// the subscription; middleware maps it to telemetry without knowing the
// transport. It is passed by value: a middleware may change its copy for the
// layers inside it without affecting other deliveries.
type Operation struct {
	// Kind is publish, consume or settle.
	Kind OperationKind
	// System is the messaging system, from Info.System.
	System string
	// Destination is, on publish, the destination shared by every message
	// ("" when a batch spans several); on consume and settle, the
	// subscription's destination or pattern, which is low cardinality.
	// Each message's concrete destination is Message.Destination.
	Destination string
	// Template is, on publish, the destination template the messages'
	// destinations were filled from ("logs.{level}" for "logs.warn"), which
	// telemetry records as messaging.destination.template and names spans
	// after; "" when there is none. On consume and settle Destination is
	// the low-cardinality name already, template included.
	Template string
	// Temporary reports a temporary, generated destination such as a NATS
	// reply inbox, which must not appear in span names.
	Temporary bool
	// Group is the consumer group or queue group of a subscription.
	Group string
	// Subscription is the durable subscription name, if any.
	Subscription string
	// Batch reports an operation made through a batch API (PublishBatch,
	// SubscribeBatch), even when it holds one message.
	Batch bool
	// ClientID, ServerAddress and ServerPort come from Info.
	ClientID      string
	ServerAddress string
	ServerPort    int
	// OperationName is the system's name for the operation when it differs
	// from the kind's default, such as "commit" for a Kafka ack, or "fetch"
	// for a JetStream receive.
	OperationName string
	// Start is, on OpReceive, when the wait for the message began, so that
	// a receive span covers the wait; zero on the other kinds.
	Start time.Time
	// Pulled reports, on OpConsume, a delivery that a receive (OpReceive)
	// took on demand: telemetry counted its messages as consumed there.
	Pulled bool
}

// OperationKind says what an Operation does.
type OperationKind uint8

// The kinds of Operation.
const (
	// OpPublish sends messages to the broker.
	OpPublish OperationKind = iota + 1
	// OpConsume hands delivered messages to a handler.
	OpConsume
	// OpSettle acknowledges, rejects or requests redelivery of consumed
	// messages.
	OpSettle
)

// String returns "publish", "consume", "settle", "request" or "receive".
func (k OperationKind) String() string {
	switch k {
	case OpPublish:
		return "publish"
	case OpConsume:
		return "consume"
	case OpSettle:
		return "settle"
	case OpRequest:
		return "request"
	case OpReceive:
		return "receive"
	}
	return "unknown"
}

// PublishFunc sends messages. msgs holds one message for Publish and every
// message for PublishBatch.
type PublishFunc func(ctx context.Context, op Operation, msgs []*Message) error

// ConsumeFunc processes one delivery: one message for Subscribe handlers, a
// batch for SubscribeBatch handlers. Its error is the handler's error; a
// handler panic arrives as a *PanicError.
type ConsumeFunc func(ctx context.Context, op Operation, msgs []*Message) error

// SettleFunc settles a processed delivery. ctx is the context the handler
// ran with, so a settle span becomes a child of the process span.
type SettleFunc func(ctx context.Context, op Operation, msgs []*Message, s Settlement) error

// Settlement is the outcome the broker applies to a delivery. A settle
// middleware passes it on to next, changing Action or Delay if it must,
// with the ctx it was given or one derived from it: the broker finds the
// delivery to settle through that ctx. A settlement passed on with an
// unrelated ctx still settles, through a fallback that bypasses the
// middleware inside it.
type Settlement struct {
	Action SettleAction
	// Delay is how long a Nak asks the transport to wait before redelivery.
	Delay time.Duration
}

// SettleAction is how a delivery is settled.
type SettleAction uint8

// The settle actions.
const (
	// Ack: processed successfully, or handed to a dead-letter destination.
	Ack SettleAction = iota + 1
	// Nak: deliver again after Settlement.Delay.
	Nak
	// Term: never deliver again.
	Term
)

// String returns "ack", "nak" or "term".
func (a SettleAction) String() string {
	switch a {
	case Ack:
		return "ack"
	case Nak:
		return "nak"
	case Term:
		return "term"
	}
	return "unknown"
}

// Middleware wraps every publish and every consume of a broker, single and
// batch. Given to New with WithMiddleware it wraps all subscriptions and all
// publishes; given to Subscribe with Use it wraps that subscription's
// consume only. The first middleware given is the outermost.
//
// A middleware that also wants to see settlement implements
// SettleMiddleware.
type Middleware interface {
	WrapPublish(next PublishFunc) PublishFunc
	WrapConsume(next ConsumeFunc) ConsumeFunc
}

// SettleMiddleware is implemented by middleware that wraps the settlement
// of deliveries (ack, nak, term) as well.
type SettleMiddleware interface {
	WrapSettle(next SettleFunc) SettleFunc
}

// MiddlewareFuncs builds a Middleware from plain functions. A nil field
// leaves that direction unwrapped.
type MiddlewareFuncs struct {
	Publish func(next PublishFunc) PublishFunc
	Consume func(next ConsumeFunc) ConsumeFunc
	Settle  func(next SettleFunc) SettleFunc
}

// WrapPublish implements Middleware.
func (m MiddlewareFuncs) WrapPublish(next PublishFunc) PublishFunc {
	if m.Publish == nil {
		return next
	}
	return m.Publish(next)
}

// WrapConsume implements Middleware.
func (m MiddlewareFuncs) WrapConsume(next ConsumeFunc) ConsumeFunc {
	if m.Consume == nil {
		return next
	}
	return m.Consume(next)
}

// WrapSettle implements SettleMiddleware.
func (m MiddlewareFuncs) WrapSettle(next SettleFunc) SettleFunc {
	if m.Settle == nil {
		return next
	}
	return m.Settle(next)
}

// OpRequest is the kind of the Operation that wraps a whole request: the
// send of the request and the wait for its reply. Middleware sees it on
// the publish chain, around an OpPublish of the request message; the
// reply's receipt is an OpConsume of a temporary destination.
const OpRequest = OpSettle + 1

// OpReceive is the kind of the Operation of a message taken on demand
// (broker.Puller): the consume chain sees it once the transport returned
// the message, with Operation.Start set to when the wait began, and its
// innermost function only passes ctx on; the message's processing follows
// as an OpConsume with Pulled set, under the ctx the receive chain gave.
// When the transport failed (other than by the caller's ctx ending), the
// chain sees it with no message and the transport's error as next's
// result.
const OpReceive = OpRequest + 1
