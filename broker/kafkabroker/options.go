package kafkabroker

import (
	"crypto/tls"
	"fmt"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/internal/logger"
)

// Defaults that differ from kafka-go's own, or that kafka-go leaves to the
// caller. Everything not listed here keeps kafka-go's default.
const (
	// defaultBroker is the seed broker used when WithSeedBrokers is not given.
	defaultBroker = "localhost:9092"
	// defaultClientID is the client id presented to the brokers when
	// WithClientID is not given.
	defaultClientID = "tracebus"
	// defaultMaxWait is how long a fetch waits on the broker for new data.
	// kafka-go waits 10s; Kafka's own consumers wait 500ms. The value does
	// not delay delivery (a fetch returns as soon as data arrives), but it
	// bounds how long closing a subscription waits for a fetch in flight.
	defaultMaxWait = 500 * time.Millisecond
	// defaultMetadataMaxAge is how long cluster metadata is trusted when
	// WithMetadataMaxAge is not given: kafka-go's default.
	defaultMetadataMaxAge = 6 * time.Second
	// defaultMaxBytes is kafka-go's default for ReaderConfig.MaxBytes. The
	// transport sets it explicitly: kafka-go checks MinBytes against
	// MaxBytes before it fills in its defaults.
	defaultMaxBytes = 1e6
)

// Option configures a Transport. A nil Option is ignored.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	brokers        []string
	clientID       string
	tls            *tls.Config
	sasl           sasl.Mechanism
	dialTimeout    time.Duration
	metadataMaxAge time.Duration
	logger         logger.Choice

	// kafka-go's own configuration, adjusted by the hooks
	writerHooks []func(*kafka.Writer)
	readerHooks []func(*kafka.ReaderConfig)
	groupHooks  []func(*kafka.ConsumerGroupConfig)

	// topics
	createPartitions  int
	createReplication int

	// requests
	replyTopic string

	err error
}

func newConfig(opts []Option) config {
	c := config{
		clientID:       defaultClientID,
		metadataMaxAge: defaultMetadataMaxAge,
		logger:         logger.Default(),
	}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if len(c.brokers) == 0 && c.err == nil {
		c.brokers = []string{defaultBroker}
	}
	return c
}

func (c *config) invalid(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("kafkabroker: "+format+": %w", append(args, broker.ErrInvalid)...)
	}
}

// positive returns an option that sets the field of config that field
// selects to v, or records v as invalid unless it is above zero.
func positive(what string, v time.Duration, field func(*config) *time.Duration) Option {
	return optionFunc(func(c *config) {
		if v <= 0 {
			c.invalid("%s %v: must be positive", what, v)
			return
		}
		*field(c) = v
	})
}

// name returns an option that sets the field to s after checkName.
func name(what string, kind nameKind, s string, field func(*config) *string) Option {
	return optionFunc(func(c *config) {
		if err := checkName(kind, s); err != nil {
			c.invalid("%s %q: %v", what, s, err)
			return
		}
		*field(c) = s
	})
}

// WithSeedBrokers sets the seed brokers, as "host:port", or a bare host for
// port 9092; an IPv6 host goes in brackets ("[::1]:9092"). Each value may
// also be a comma-separated list, as Kafka's bootstrap.servers and the
// -kafka flag of command-line tools take it ("h1:9092, h2:9092"; spaces
// around the commas are ignored). A URL with a scheme ("kafka://h:9092",
// "SASL_SSL://h:9093") is refused, not stripped: TLS and SASL are the
// options WithTLS and WithSASL. New fails with broker.ErrInvalid,
// naming the value, on an empty or malformed address or a port out of
// range. The first broker is reported as server.address and server.port.
// The default is "localhost:9092".
func WithSeedBrokers(addrs ...string) Option {
	return optionFunc(func(c *config) {
		brokers, err := brokerAddrs(addrs)
		if err != nil {
			c.invalid("%v", err)
			return
		}
		c.brokers = brokers
	})
}

// WithClientID sets the client id presented to the brokers and reported as
// messaging.client.id: 1 to 249 bytes of text without control characters
// or surrounding spaces. The default is "tracebus".
func WithClientID(id string) Option {
	return name("client id", idName, id, func(c *config) *string { return &c.clientID })
}

// WithTLS makes every connection use TLS with cfg.
func WithTLS(cfg *tls.Config) Option {
	return optionFunc(func(c *config) { c.tls = cfg })
}

// WithSASL authenticates every connection with m, such as
// plain.Mechanism{Username: "u", Password: "p"} from
// github.com/segmentio/kafka-go/sasl/plain or a mechanism made by
// scram.Mechanism from github.com/segmentio/kafka-go/sasl/scram.
func WithSASL(m sasl.Mechanism) Option {
	return optionFunc(func(c *config) { c.sasl = m })
}

// WithDialTimeout bounds establishing a connection, TLS and SASL included.
// kafka-go's default is 5s for the writer and 10s for readers. It also
// bounds how long a partition reader waits for the answer to a request
// kafka-go sends without a deadline of its own (the partition leader's
// lookup): a broker that accepts connections and never answers is then
// given up for the next seed broker instead of stalling the partition.
func WithDialTimeout(d time.Duration) Option {
	return positive("dial timeout", d, func(c *config) *time.Duration { return &c.dialTimeout })
}

// WithMetadataMaxAge sets how long the transport trusts the cluster
// metadata it cached (kafka-go's metadata cache and the partition counts
// Publish checks Message.Partition against), like the Java client's
// metadata.max.age.ms. A topic created while the transport runs becomes
// known within d; a publish to it waits that long at most. The default is
// kafka-go's, 6s.
func WithMetadataMaxAge(d time.Duration) Option {
	return positive("metadata max age", d, func(c *config) *time.Duration { return &c.metadataMaxAge })
}

// WithWriterConfig lets fn adjust the kafka-go Writer every publish goes
// through, for the producer settings: BatchSize, BatchBytes, BatchTimeout,
// RequiredAcks, Compression, WriteTimeout, MaxAttempts, Balancer. The
// transport's defaults are set before fn runs: RequiredAcks is
// kafka.RequireAll (Publish promises that the messages were stored; kafka-go
// defaults to RequireNone) and BatchTimeout is one nanosecond (no linger, so
// that a single Publish does not wait; kafka-go lingers a second). A
// BatchTimeout left at zero keeps that default.
//
// After fn the transport sets Addr, Topic, Transport and
// AllowAutoTopicCreation again, and wraps Balancer (kafka-go's, or the
// default: murmur2 of the key as the Java client, round-robin without a
// key) so that Message.Partition still chooses the partition when set, and
// Completion so that Publish learns where each message was stored. New
// fails with broker.ErrInvalid on a RequiredAcks kafka-go does not
// know. Hooks run in the order given.
func WithWriterConfig(fn func(*kafka.Writer)) Option {
	return optionFunc(func(c *config) {
		if fn != nil {
			c.writerHooks = append(c.writerHooks, fn)
		}
	})
}

// WithReaderConfig lets fn adjust the kafka-go ReaderConfig of every
// partition reader, for the fetch settings: MinBytes, MaxBytes, MaxWait,
// QueueCapacity, ReadBackoffMin/Max, IsolationLevel, and for
// CommitInterval, which a group subscription reads (the transport commits,
// not kafka-go's reader).
//
// CommitInterval, as in kafka-go, commits acknowledged offsets every
// interval instead of once per acknowledgement. Ack then returns before the
// offset is stored; offsets not yet committed are committed when the
// partition is revoked or the subscription closes, and are lost (the
// messages are delivered again) if the process dies first. The default, 0,
// commits synchronously: Ack returns once the broker stored the offset. A
// negative interval makes Subscribe fail with broker.ErrInvalid.
//
// The transport's
// defaults are set before fn runs: MaxWait 500ms (kafka-go waits 10s; it
// bounds how long closing a subscription waits for a fetch in flight) and
// MaxBytes 1e6; Dialer is the transport's (client id, TLS, SASL, dial
// timeout), which fn may wrap. After fn the transport sets Brokers, Topic,
// Partition and GroupID again. A configuration kafka-go rejects (MinBytes above
// MaxBytes, a negative size) makes Subscribe fail with
// broker.ErrInvalid.
func WithReaderConfig(fn func(*kafka.ReaderConfig)) Option {
	return optionFunc(func(c *config) {
		if fn != nil {
			c.readerHooks = append(c.readerHooks, fn)
		}
	})
}

// WithConsumerGroupConfig lets fn adjust the kafka-go ConsumerGroupConfig of
// every group subscription, for the membership settings: HeartbeatInterval,
// SessionTimeout, RebalanceTimeout, JoinGroupBackoff, PartitionWatchInterval
// (also how often a subscription looks for its topic while it does not
// exist), GroupBalancers, StartOffset (StartOffset on the subscription wins).
// Dialer is the transport's, which fn may wrap. After fn the transport sets
// ID, Brokers and Topics again. A
// configuration kafka-go rejects makes Subscribe fail with
// broker.ErrInvalid.
func WithConsumerGroupConfig(fn func(*kafka.ConsumerGroupConfig)) Option {
	return optionFunc(func(c *config) {
		if fn != nil {
			c.groupHooks = append(c.groupHooks, fn)
		}
	})
}

// WithAutoCreateTopics makes the transport create every topic it publishes
// or subscribes to that does not exist yet, with the given number of
// partitions and replication factor (-1 for either means the broker's
// default). Creation goes through the CreateTopics API, so it works whether
// or not the brokers allow automatic topic creation. The reply topic
// (WithReplyTopic) is created too, with one partition, before the first
// request.
func WithAutoCreateTopics(partitions, replicationFactor int) Option {
	return optionFunc(func(c *config) {
		if !countOrDefault(partitions) || !countOrDefault(replicationFactor) {
			c.invalid("auto-create topics with %d partitions, replication %d", partitions, replicationFactor)
			return
		}
		c.createPartitions = partitions
		c.createReplication = replicationFactor
	})
}

// countOrDefault reports whether n is a partition count or replication
// factor the CreateTopics API takes: positive, or -1 for the broker's
// default.
func countOrDefault(n int) bool { return n > 0 || n == -1 }
