package driver

import (
	"context"
	"log/slog"
	"time"
)

// Transport moves messages between a Broker and one messaging system. The
// memory, NATS and Kafka transports implement it; a Broker adds the
// middleware chain, handler dispatch, the outcome policy and shutdown on top.
//
// A Transport knows nothing about OpenTelemetry. It describes itself through
// Info and fills the delivery facts of consumed messages; middleware maps
// those to telemetry.
//
// All methods must be safe for concurrent use.
type Transport interface {
	// Info describes the transport for telemetry and logs. It is called on
	// every publish and delivery and must be cheap.
	Info() Info

	// Publish sends msgs, in order. The transport must not retain msgs or
	// their slices after Publish returns. When some messages of a batch fail
	// and others succeed, Publish returns a BatchError aligned with msgs.
	Publish(ctx context.Context, msgs []*Message) error

	// Subscribe starts delivering the messages that match spec. For every
	// delivery (one message, or up to spec.BatchSize for batch
	// subscriptions) the transport calls deliver with the ctx given to
	// Subscribe, copies of the messages, and an Acknowledger for exactly
	// those messages. deliver settles the delivery through the Acknowledger
	// before it returns.
	//
	// The transport runs up to spec.Concurrency deliver calls at once and
	// keeps the order of messages where its system promises one (a Kafka
	// partition, a JetStream consumer with concurrency 1).
	//
	// ctx is the broker's delivery context: it carries values for handlers
	// and is cancelled only when a shutdown deadline forces handlers to
	// abort. The subscription ends when Subscription.Close is called, not
	// when ctx is done.
	Subscribe(ctx context.Context, spec SubscriptionSpec, deliver DeliverFunc) (Subscription, error)
	// ValidateSubscription checks spec, its transport options in
	// particular, without starting it. Broker.Subscribe calls it, so a
	// mistake fails at Subscribe rather than at Start. An option meant for
	// another transport, or a feature the system lacks, gives an error
	// wrapping errors.ErrUnsupported; a value out of range one wrapping
	// broker.ErrInvalid.
	ValidateSubscription(spec SubscriptionSpec) error
	// OpenInbox starts receiving the replies to a broker's requests and
	// calls deliver for each, with the broker's id of the request it
	// answers (the token of a NATS inbox subject; for a Kafka reply its
	// "x-tracebus-reply-id" header, else its HeaderCorrelationID). deliver is also called with an error the system reports
	// instead of a reply, such as a NATS no-responders status; such an
	// error wraps broker.ErrNoResponders. deliver does not block and does
	// not retain reply beyond its call unless it keeps it. The broker
	// opens one inbox, at its first request, and closes it in Close; a
	// system without replies returns an error wrapping
	// errors.ErrUnsupported.
	//
	// ctx bounds the opening only; the inbox lives until Close.
	OpenInbox(ctx context.Context, deliver InboxFunc) (Inbox, error)
	// Ping returns nil when the system answered within ctx, and an error
	// saying why not otherwise (broker.ErrClosed once the transport is
	// closed). Broker.Ping and App readiness use it.
	Ping(ctx context.Context) error

	// Close releases the transport's connections. It is called once, after
	// every subscription was closed. Calling it again returns nil.
	Close(ctx context.Context) error
}

// Info describes a transport.
type Info struct {
	// System is the messaging system: "nats", "kafka" or "memory". It
	// becomes messaging.system.
	System string
	// ServerAddress and ServerPort name the broker the transport talks to,
	// without reverse DNS. ServerPort is 0 when unknown.
	ServerAddress string
	ServerPort    int
	// ClientID is the client identifier the transport presents to the
	// broker (Kafka client.id, NATS connection name), if any.
	ClientID string
	// AckOperation is the system's name for settling a message successfully:
	// "ack" for NATS and memory, "commit" for Kafka. Empty means "ack".
	AckOperation string
	// ReceiveOperation is the system's name for taking a message on
	// demand (driver.Puller): "poll" for Kafka. Empty means "receive".
	ReceiveOperation string
	// TemporaryPrefix starts every temporary, generated destination of
	// the system, such as the "_INBOX." of NATS reply subjects; "" when
	// it has none. The broker marks operations on such destinations so
	// that telemetry keeps them out of span names.
	TemporaryPrefix string
	// Separator joins the levels of a hierarchical destination, such as
	// the "." of NATS subjects. A Router joins its prefix and each
	// destination with it ("orders" and "created" make "orders.created")
	// unless the prefix ends with it already; "" puts the prefix in front
	// of the destination as it is (Kafka topics).
	Separator string
}

// SubscriptionNamer is implemented by transports with named, durable
// subscriptions (JetStream consumers). The broker reports the name it returns
// for a spec as Operation.Subscription, which telemetry records as
// messaging.destination.subscription.name; "" means the subscription has no
// such name. Without this interface Operation.Subscription stays empty, so
// a transport that ignores SubscriptionSpec.Name never claims one.
type SubscriptionNamer interface {
	SubscriptionName(spec SubscriptionSpec) string
}

// SubscriptionSpec is what a Transport needs to start a subscription. The
// broker fills it from Subscribe's arguments and options, after validating
// them, and always completely: Concurrency and MaxAttempts are at least 1,
// and a batch spec has a BatchSize of at least 1 and a positive BatchWait.
type SubscriptionSpec struct {
	// Destination is the subject, subject pattern or topic.
	Destination string
	// Group is the consumer group or queue group; empty means every
	// subscription receives every message.
	Group string
	// Name names a durable subscription (a JetStream durable consumer).
	// Transports without durable subscriptions ignore it.
	Name string
	// Pull reports a Puller's subscription (broker.NewPuller), which the
	// broker opens with Puller.Pull instead of Subscribe, so that
	// ValidateSubscription can refuse what cannot be pulled.
	Pull bool
	// Batch reports a batch subscription: deliveries carry up to BatchSize
	// messages, formed within BatchWait of the first one.
	Batch     bool
	BatchSize int
	BatchWait time.Duration
	// Concurrency is how many deliveries may run at once; at least 1.
	Concurrency int
	// MaxAttempts is how many deliveries a failing message gets before the
	// broker dead-letters or drops it (broker.MaxAttempts); 0 when unknown.
	// A transport whose server limits redeliveries (JetStream MaxDeliver)
	// sets that limit from it.
	MaxAttempts int
	// Events takes what the transport observes about the subscription
	// outside a delivery: messages it dropped, handlers it gave up on. The
	// broker sets it; it is nil when a transport is used on its own.
	Events SubscriptionEvents
	// TransportOptions are the options given with broker.TransportOption, in
	// order, all meant for this transport (the broker checked their
	// TransportName). A transport applies the ones it defines and rejects
	// others with an error wrapping errors.ErrUnsupported.
	TransportOptions []TransportOption
}

// LoggerSetter is implemented by transports that log. A Broker hands them
// its logger (WithLogger, or slog.Default()) when it is created, unless
// the transport was given a logger of its own, which it then keeps.
type LoggerSetter interface {
	SetLogger(l *slog.Logger)
}

// DeliverFunc is how a transport hands a delivery to the broker. msgs holds
// one message for plain subscriptions and one or more for batch
// subscriptions. It returns after the delivery was processed and settled
// through ack.
type DeliverFunc func(ctx context.Context, msgs []*Message, ack Acknowledger)

// Acknowledger settles one delivery. The broker calls exactly one of its
// methods, once, before DeliverFunc returns.
type Acknowledger interface {
	// Ack reports that the messages were processed (JetStream ack, Kafka
	// commit).
	Ack(ctx context.Context) error
	// Nak asks for the messages to be delivered again, not before delay,
	// with their DeliveryCount increased. Transports without server-side
	// redelivery retry in place after deliver returns.
	Nak(ctx context.Context, delay time.Duration) error
	// Term reports that the messages must never be delivered again
	// (JetStream term; an ack where the system has no such notion).
	Term(ctx context.Context) error
}

// Subscription is a running subscription on a transport.
type Subscription interface {
	// Close stops fetching new messages, waits until every delivery in
	// flight has returned and been settled, and releases the subscription.
	// When ctx is done first, it returns ctx.Err() and abandons what is left
	// (unsettled messages are redelivered where the system does that).
	// Calling Close again returns nil.
	Close(ctx context.Context) error
}

// InboxFunc receives a reply, or an error in place of one, for the request
// with correlation id id.
type InboxFunc func(id string, reply *Message, err error)

// Inbox is a transport's reply inbox.
type Inbox interface {
	// ReplyTo returns the reply address of the request with correlation
	// id id.
	ReplyTo(id string) string
	// Close stops receiving replies.
	Close(ctx context.Context) error
}

// ReplyPreparer is implemented by transports that must learn about a reply
// address before they can publish to it quickly, such as Kafka, whose
// client knows a requester's new reply topic only after its next metadata
// refresh. Reply calls PrepareReply before publishing; an error fails the
// reply.
type ReplyPreparer interface {
	PrepareReply(ctx context.Context, replyTo string) error
}

// SharedDestinations is implemented by transports that can tell whether
// another transport reaches the same destinations as they do: two
// connections to one server. The memory transport implements it (two
// transports of one memory.Server). Without it, two transports share their
// destinations when their Info names the same system and the same server
// address and port.
//
// HandleResult uses it to refuse a PublishTo publisher of another broker
// whose results would come back to the subscription itself.
type SharedDestinations interface {
	SharesDestinations(other Transport) bool
}

// TransportOption is a subscription option defined by one transport, such
// as natsbroker.Stream or kafkabroker.StartOffset. Transports export
// functions that wrap their options with broker.TransportOption.
type TransportOption interface {
	// TransportName is the Info().System of the transport the option is
	// for: "nats", "kafka", "memory".
	TransportName() string
}

// An option may also have the method ReadsElsewhere() bool. When it returns
// true, the subscription's destination does not name the transport's
// destinations but something else (a NATS key-value watch: the keys of a
// bucket), so the broker does not refuse DeadLetter and PublishTo
// destinations that its pattern happens to match: what is published there
// cannot come back to the subscription. An option may have the method
// DestinationPattern() bool: when it returns true, the destination is a
// pattern the transport matches itself (kafkabroker.Pattern, a regular
// expression), passed on as written instead of read as a template, and the
// broker matches DeadLetter and PublishTo destinations against it as a
// regular expression over the whole name.

// Puller is implemented by transports that take messages on demand, so
// that a message nobody asked for stays on the server (broker.Puller):
// JetStream pull consumers, core NATS synchronous subscriptions, Kafka
// readers, the memory transport.
type Puller interface {
	// Pull opens an on-demand consumer of spec, which is a single-message
	// spec (Batch false). next waits, within its ctx, for one message and
	// returns it with its delivery facts filled and an Acknowledger that
	// settles it; when ctx ends first it returns an error matching
	// ctx.Err(), and once sub is closed one matching broker.ErrClosed.
	// next is safe for concurrent use. A Nak makes the message come back
	// to a later next, with its DeliveryCount increased, as the system
	// redelivers it for Subscribe.
	//
	// sub.Close releases the consumer; messages taken and not settled are
	// redelivered where the system does that. ctx bounds the opening only.
	Pull(ctx context.Context, spec SubscriptionSpec) (sub Subscription, next func(ctx context.Context) (*Message, Acknowledger, error), err error)
}

// ProgressReporter is implemented by Acknowledgers whose system can be told
// that a delivery is still being worked on (JetStream "+WPI").
type ProgressReporter interface {
	InProgress(ctx context.Context) error
}
