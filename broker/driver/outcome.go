package driver

import "context"

// OutcomeKind says what happened to messages of a subscription besides
// being handled successfully.
type OutcomeKind uint8

// The outcomes an OutcomeObserver sees.
const (
	// OutcomeRetried: the handler failed and the messages will be
	// delivered again (a Nak with the backoff). Outcome.Err is the
	// handler's error. A dead-letter publish that failed is retried too,
	// and reported so, with the handler's error.
	OutcomeRetried OutcomeKind = iota + 1
	// OutcomeDeadLettered: the messages failed their last attempt (or
	// permanently) and were sent to the dead-letter destination.
	OutcomeDeadLettered
	// OutcomeDropped: the messages failed their last attempt (or
	// permanently), the subscription has no dead-letter destination, and
	// they were terminated.
	OutcomeDropped
	// OutcomeTransportDropped: the transport dropped messages meant for
	// the subscription before a handler could settle them, such as a core
	// NATS slow consumer or a JetStream message past its MaxDeliver.
	// Outcome.Messages is the count, Outcome.Reason why; Outcome.Msgs is
	// nil.
	OutcomeTransportDropped
	// OutcomeHung: a handler ran past the transport's maximum handling
	// time; the transport gave its messages back to the server for
	// redelivery.
	OutcomeHung
)

// String returns "retried", "dead_lettered", "dropped",
// "transport_dropped" or "hung".
func (k OutcomeKind) String() string {
	switch k {
	case OutcomeRetried:
		return "retried"
	case OutcomeDeadLettered:
		return "dead_lettered"
	case OutcomeDropped:
		return "dropped"
	case OutcomeTransportDropped:
		return "transport_dropped"
	case OutcomeHung:
		return "hung"
	}
	return "unknown"
}

// Outcome is one decision about messages of a subscription.
type Outcome struct {
	Kind OutcomeKind
	// Messages is how many messages the outcome concerns.
	Messages int
	// Msgs are those messages, when the outcome concerns a delivery; nil
	// for OutcomeTransportDropped. An observer must not keep or change
	// them.
	Msgs []*Message
	// Err is the handler's error for OutcomeRetried, OutcomeDeadLettered
	// and OutcomeDropped; nil otherwise.
	Err error
	// Reason is why the transport dropped the messages of an
	// OutcomeTransportDropped (see SubscriptionEvents.Dropped).
	Reason string
}

// OutcomeFunc receives the outcomes of one subscription. It is called
// from the goroutines that run handlers and from the transport's own; it
// must be safe for concurrent use and must not block.
type OutcomeFunc func(ctx context.Context, o Outcome)

// OutcomeObserver is implemented by middleware that wants to see what the
// broker's outcome policy and the transport decided about a subscription's
// messages: retries, dead letters and drops, and what the transport lost or
// gave up outside a delivery. The broker calls ObserveOutcomes once per
// subscription, with the subscription's consume Operation, when the
// subscription is registered, so the observer can prepare what it records
// once; a nil OutcomeFunc observes nothing.
type OutcomeObserver interface {
	ObserveOutcomes(op Operation) OutcomeFunc
}

// SubscriptionEvents is how a transport reports what happens to a
// subscription outside a delivery. The broker sets
// SubscriptionSpec.Events; a transport used without a broker may find it
// nil. The methods are safe for concurrent use and do not block.
type SubscriptionEvents interface {
	// Dropped reports n messages that will not reach a handler of the
	// subscription although it should have had them, and why, in a short
	// fixed word: "slow_consumer" (core NATS dropped them from a full
	// buffer), "max_deliveries" (JetStream stopped redelivering a message
	// that reached the consumer's MaxDeliver). The broker counts them by
	// reason and logs a rate-limited warning.
	Dropped(ctx context.Context, n int, reason string)
	// Hung reports a delivery whose handler ran past the maximum handling
	// time, after the transport gave msgs back for redelivery and logged
	// it. The broker counts it.
	Hung(ctx context.Context, msgs []*Message)
}
