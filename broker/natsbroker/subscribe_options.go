package natsbroker

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/internal/subopt"
)

// The subscription options below are broker.SubscribeOption values: pass
// them to broker.Broker.Subscribe or SubscribeBatch next to the broker's own
// options. They reach the transport through driver.TransportOption.

// JetStream makes the subscription consume from JetStream even when the
// transport does not route its destination through JetStream (see
// WithJetStream). Publishes to the destination may still be core NATS
// publishes: a stream stores them all the same.
func JetStream() broker.SubscribeOption {
	return newSubOption("JetStream()", func(c *subConfig) { c.jetStream = true })
}

// Core makes the subscription a core NATS subscription even when the
// transport routes its destination through JetStream. Core subscriptions
// see only messages published while they run, and retry failed messages in
// place instead of having the server redeliver them.
func Core() broker.SubscribeOption {
	return newSubOption("Core()", func(c *subConfig) { c.core = true })
}

// Stream makes the subscription consume from the named stream instead of
// the stream found for its destination. It implies JetStream.
func Stream(name string) broker.SubscribeOption {
	return newSubOption("Stream("+name+")", func(c *subConfig) {
		c.jetStream = true
		c.stream = name
	})
}

// BindConsumer makes the subscription consume through an existing consumer
// of the stream, managed outside the transport, instead of one the
// transport creates. The consumer must be a pull consumer with explicit
// acknowledgement. It implies JetStream.
func BindConsumer(name string) broker.SubscribeOption {
	return newSubOption("BindConsumer("+name+")", func(c *subConfig) {
		c.jetStream = true
		c.bind = name
	})
}

// ConfigureConsumer edits the configuration of the consumer the transport
// creates for a JetStream subscription, after the transport filled it in
// (durable name, filter subject, explicit acks, deliver policy): for
// example to set AckWait, MaxAckPending or a DeliverPolicy. Functions run
// in the order given. It is an error on a core NATS subscription and is
// ignored with BindConsumer.
func ConfigureConsumer(f func(*jetstream.ConsumerConfig)) broker.SubscribeOption {
	return newSubOption("ConfigureConsumer(...)", func(c *subConfig) {
		if f != nil {
			c.configure = append(c.configure, f)
		}
	})
}

// ConsumeOptions tunes how a JetStream subscription pulls messages, such as
// jetstream.PullMaxMessages (how many messages are buffered ahead of the
// handlers) or jetstream.PullExpiry. A jetstream.ConsumeErrHandler given
// here is called as well as the transport's own; it hears of a deleted
// consumer once (jetstream.ErrConsumerDeleted or ErrConsumerNotFound),
// whether nats.go or the server's advisory reported it first. It is an error on a core
// NATS subscription and is ignored by batch subscriptions, which fetch.
func ConsumeOptions(opts ...jetstream.PullConsumeOpt) broker.SubscribeOption {
	return newSubOption("ConsumeOptions(...)", func(c *subConfig) { c.consumeOpts = append(c.consumeOpts, opts...) })
}

// defaultMaxHandlingTime is how long a JetStream handler may hold its
// messages without reporting progress, unless MaxHandlingTime says
// otherwise.
const defaultMaxHandlingTime = 10 * time.Minute

// MaxHandlingTime bounds how long the handler of a JetStream subscription
// may hold a delivery: the transport keeps the messages' AckWait from
// expiring while the handler works, for at most d after the delivery began
// or after the handler last called Settler.InProgress. Then it gives the
// messages back to the server (nak) for another delivery, logs a warning
// and reports the hang (the telemetry middleware counts it in
// tracebus.consumer.hung.messages). The handler's goroutine cannot be
// stopped: its context is cancelled, and what it settles afterwards is
// ignored (Settler methods return ErrMaxHandlingTime).
//
// The default is 10 minutes. d must be positive. Core NATS
// subscriptions have no acknowledgement deadline to extend, so the option
// is an error there.
func MaxHandlingTime(d time.Duration) broker.SubscribeOption {
	return newSubOption("MaxHandlingTime("+d.String()+")", func(c *subConfig) {
		c.maxHandling = d
		c.maxHandlingSet = true
	})
}

// PendingLimits sets how many messages, and how many bytes of them, a core
// NATS subscription buffers ahead of its handlers (nats.go's
// Subscription.SetPendingLimits; its defaults are 512Ki messages and 64 MiB).
// Beyond them nats.go drops messages: the transport reports each drop (see
// the package documentation). A negative value means no limit; zero is
// invalid. It is an error on a JetStream subscription, whose server keeps
// what the client has no room for.
func PendingLimits(msgs, bytes int) broker.SubscribeOption {
	return newSubOption(fmt.Sprintf("PendingLimits(%d, %d)", msgs, bytes), func(c *subConfig) {
		c.pendingMsgs, c.pendingBytes = msgs, bytes
		c.pendingSet = true
	})
}

// OrderedRetries makes a core NATS subscription retry a failed message in
// place: the delivery waits its backoff while the messages behind it wait
// too, which keeps their order but lets nats.go's pending limits fill up
// and drop messages under load. By default a failed message steps aside:
// it is retried after its backoff while the messages behind it are
// delivered. JetStream subscriptions are redelivered by the server and
// ignore it.
func OrderedRetries() broker.SubscribeOption {
	return newSubOption("OrderedRetries()", func(c *subConfig) { c.ordered = true })
}

// WatchKV makes the subscription watch the NATS key-value bucket named
// bucket instead of subscribing to a subject: the destination is a key or a
// key pattern with NATS wildcards ("config.*", ">"), and every update of a
// matching key is a message. It first delivers the current value of every
// matching key, then each put, delete and purge as it happens, in revision
// order:
//
//	broker.Handle[Config](b, "config.*", h, natsbroker.WatchKV("settings"))
//
// Message.Destination is the key, Body the value, Delivery.Sequence the
// revision, Delivery.Timestamp when it was written, Delivery.Bucket the
// bucket and Delivery.Stream its stream ("KV_settings"). A delete or a
// purge has Delivery.Deleted set, no Body, and the KV-Operation header
// NATS writes ("DEL" or "PURGE"); a typed handler gets the zero value of
// its type for it. See the package documentation for retries, reconnects
// and what telemetry can and cannot carry through a bucket.
//
// The bucket must exist: the transport creates none, and Start fails with
// an error naming it (matching jetstream.ErrBucketNotFound) when it is
// missing. A bucket name NATS refuses, a batch subscription, a group, or
// another natsbroker subscription option with it fail at Subscribe with
// broker.ErrInvalid.
func WatchKV(bucket string) broker.SubscribeOption {
	return newWatchOption("WatchKV("+bucket+")", func(c *subConfig) {
		c.watchKV = append(c.watchKV, bucket)
	})
}

// WatchObjects makes the subscription watch the NATS object store bucket
// named bucket: every object put into it or deleted from it is a message.
// The destination selects objects by name: ">" takes every object; a name
// without wildcards takes that object; a pattern whose dot-separated tokens
// are "*" (any one token) or a final ">" (one or more tokens) takes the
// names it matches like a subject ("reports.*" takes "reports.pdf"). Like
// WatchKV it first delivers every matching object there is, then each
// change as it happens.
//
// Message.Destination is the object's name, Body its content (read whole
// when the update is delivered, so the latest content of the object),
// Headers the headers it was put with, ID its NUID, Delivery.Timestamp its
// modification time and Delivery.Bucket the bucket. A deleted object has
// Delivery.Deleted set and no Body. The bucket must exist; the errors and
// refusals are those of WatchKV.
func WatchObjects(bucket string) broker.SubscribeOption {
	return newWatchOption("WatchObjects("+bucket+")", func(c *subConfig) {
		c.watchObj = append(c.watchObj, bucket)
	})
}

type subConfig struct {
	core        bool // Core: never JetStream
	jetStream   bool // JetStream, Stream, BindConsumer: always JetStream
	stream      string
	bind        string
	configure   []func(*jetstream.ConsumerConfig)
	consumeOpts []jetstream.PullConsumeOpt

	maxHandling    time.Duration
	maxHandlingSet bool
	pendingMsgs    int
	pendingBytes   int
	pendingSet     bool
	ordered        bool

	watchKV  []string // WatchKV buckets, as given
	watchObj []string // WatchObjects buckets, as given
}

// watch reports whether the subscription watches a bucket.
func (c *subConfig) watch() bool { return len(c.watchKV)+len(c.watchObj) > 0 }

func newSubOption(name string, f func(*subConfig)) broker.SubscribeOption {
	return broker.TransportOption(subopt.Option[subConfig]{Package: "natsbroker", System: system, Name: name, Apply: f})
}

// newWatchOption is a watch's option: its destination names keys or
// objects of a bucket, not subjects, so a dead-letter or PublishTo subject
// the pattern matches is no loop.
func newWatchOption(name string, f func(*subConfig)) broker.SubscribeOption {
	return broker.TransportOption(subopt.Option[subConfig]{Package: "natsbroker", System: system, Name: name, Apply: f, Elsewhere: true})
}

// subscription reads spec's transport options and checks that they fit
// together and fit the destination.
func (t *Transport) subscription(spec *driver.SubscriptionSpec) (subConfig, error) {
	var c subConfig
	c.maxHandling = defaultMaxHandlingTime
	if err := subopt.Apply("natsbroker", system, spec, &c); err != nil {
		return c, err
	}
	if c.maxHandling <= 0 {
		return c, fmt.Errorf("natsbroker: subscribe %s: MaxHandlingTime %v: must be positive: %w",
			spec.Destination, c.maxHandling, broker.ErrInvalid)
	}
	if c.pendingSet && (c.pendingMsgs == 0 || c.pendingBytes == 0) {
		return c, fmt.Errorf("natsbroker: subscribe %s: PendingLimits(%d, %d): zero is not a limit: %w",
			spec.Destination, c.pendingMsgs, c.pendingBytes, broker.ErrInvalid)
	}
	if c.watch() {
		return c, checkWatch(spec, &c)
	}
	if c.core && c.jetStream {
		return c, fmt.Errorf("natsbroker: subscribe %s: Core together with JetStream, Stream or BindConsumer: %w",
			spec.Destination, broker.ErrInvalid)
	}
	core := c.isCore(t, spec.Destination)
	if core && (len(c.configure) > 0 || len(c.consumeOpts) > 0 || c.maxHandlingSet) {
		return c, fmt.Errorf("natsbroker: subscribe %s: JetStream consumer options on a core NATS subscription: %w",
			spec.Destination, broker.ErrInvalid)
	}
	if !core && c.pendingSet {
		return c, fmt.Errorf("natsbroker: subscribe %s: PendingLimits on a JetStream subscription: %w",
			spec.Destination, broker.ErrInvalid)
	}
	return c, nil
}

// isCore reports whether the subscription is a core NATS one.
func (c *subConfig) isCore(t *Transport, destination string) bool {
	return c.core || !c.jetStream && !t.jetStreamFor(destination)
}
