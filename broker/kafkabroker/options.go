package kafkabroker

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/internal/logger"
)

// Defaults that differ from kafka-go's own. Everything not listed here keeps
// kafka-go's default.
const (
	// DefaultBroker is the seed broker used when WithBrokers is not given.
	DefaultBroker = "localhost:9092"
	// DefaultClientID is the client id presented to the brokers when
	// WithClientID is not given.
	DefaultClientID = "tracebus"
	// DefaultMaxWait is how long a fetch waits on the broker for new data.
	// kafka-go waits 10s; Kafka's own consumers wait 500ms. The value does
	// not delay delivery (a fetch returns as soon as data arrives), but it
	// bounds how long closing a subscription waits for a fetch in flight.
	DefaultMaxWait = 500 * time.Millisecond
	// DefaultMetadataMaxAge is how long cluster metadata is trusted when
	// WithMetadataMaxAge is not given: kafka-go's default.
	DefaultMetadataMaxAge = 6 * time.Second
)

// defaultMaxBytes is kafka-go's default for ReaderConfig.MaxBytes. The
// transport sets it explicitly: kafka-go checks MinBytes against MaxBytes
// before it fills in its defaults.
const defaultMaxBytes = 1e6

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

	// writer
	batchSize    int
	batchBytes   int64
	batchTimeout time.Duration
	requiredAcks kafka.RequiredAcks
	compression  kafka.Compression
	balancer     kafka.Balancer
	writeTimeout time.Duration
	writeRetries int
	writerHooks  []func(*kafka.Writer)

	// readers and groups
	minBytes          int
	maxBytes          int
	maxWait           time.Duration
	queueCapacity     int
	startOffset       int64 // 0: per-kind default
	commitInterval    time.Duration
	heartbeatInterval time.Duration
	sessionTimeout    time.Duration
	rebalanceTimeout  time.Duration
	joinGroupBackoff  time.Duration
	partitionWatch    time.Duration
	groupBalancers    []kafka.GroupBalancer
	readerHooks       []func(*kafka.ReaderConfig)
	groupHooks        []func(*kafka.ConsumerGroupConfig)

	// topics
	createPartitions  int
	createReplication int

	// requests
	replyTopic       string
	replyCreate      bool
	replyReplication int

	err error
}

func newConfig(opts []Option) config {
	c := config{
		clientID:       DefaultClientID,
		requiredAcks:   kafka.RequireAll,
		maxWait:        DefaultMaxWait,
		metadataMaxAge: DefaultMetadataMaxAge,
		logger:         logger.Default(),
	}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if len(c.brokers) == 0 && c.err == nil {
		c.brokers = []string{DefaultBroker}
	}
	if maxBytes := cmp.Or(c.maxBytes, defaultMaxBytes); c.minBytes > maxBytes {
		c.invalid("min bytes %d above max bytes %d", c.minBytes, maxBytes)
	}
	return c
}

func (c *config) invalid(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("kafkabroker: "+format+": %w", append(args, broker.ErrInvalid)...)
	}
}

// number is what the numeric options take.
type number interface {
	~int | ~int64
}

// positive returns an option that sets the field of config that field
// selects to v, or records v as invalid unless it is above zero.
func positive[T number](what string, v T, field func(*config) *T) Option {
	return optionFunc(func(c *config) {
		if v <= 0 {
			c.invalid("%s %v: must be positive", what, v)
			return
		}
		*field(c) = v
	})
}

// nonNegative is positive that also takes zero.
func nonNegative[T number](what string, v T, field func(*config) *T) Option {
	return optionFunc(func(c *config) {
		if v < 0 {
			c.invalid("%s %v: must not be negative", what, v)
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

// WithBrokers sets the seed brokers, as "host:port", or a bare host for
// port 9092; an IPv6 host goes in brackets ("[::1]:9092"). Each value may
// also be a comma-separated list, as Kafka's bootstrap.servers and the
// -kafka flag of command-line tools take it ("h1:9092, h2:9092"; spaces
// around the commas are ignored). A URL with a scheme ("kafka://h:9092",
// "SASL_SSL://h:9093") is refused, not stripped: TLS and SASL are the
// options WithTLS and WithSASL. New fails with broker.ErrInvalid,
// naming the value, on an empty or malformed address or a port out of
// range. The first broker is reported as server.address and server.port.
// The default is DefaultBroker.
func WithBrokers(addrs ...string) Option {
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
// or surrounding spaces. The default is DefaultClientID.
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
// kafka-go's default is 5s for the writer and 10s for readers.
func WithDialTimeout(d time.Duration) Option {
	return positive("dial timeout", d, func(c *config) *time.Duration { return &c.dialTimeout })
}

// WithMetadataMaxAge sets how long the transport trusts the cluster
// metadata it cached (kafka-go's metadata cache and the partition counts
// Publish checks Message.Partition against), like the Java client's
// metadata.max.age.ms. A topic created while the transport runs becomes
// known within d; a publish to it waits that long at most. The default is
// DefaultMetadataMaxAge.
func WithMetadataMaxAge(d time.Duration) Option {
	return positive("metadata max age", d, func(c *config) *time.Duration { return &c.metadataMaxAge })
}

// WithLogger sets the logger for errors the transport cannot return to a
// caller: fetch and join failures, failed commits on shutdown. kafka-go's
// own error log is forwarded to it at debug level. Without it the transport
// logs to the logger of the broker it is given to (broker.WithLogger), or
// to slog.Default(). A nil l is ignored.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) { c.logger.Own(l) })
}

// WithWriteBatchSize caps how many messages the writer puts in one produce
// request per partition. kafka-go's default is 100.
func WithWriteBatchSize(n int) Option {
	return positive("batch size", n, func(c *config) *int { return &c.batchSize })
}

// WithWriteBatchBytes caps the size of one produce request per partition.
// kafka-go's default is 1 MiB.
func WithWriteBatchBytes(n int64) Option {
	return positive("batch bytes", n, func(c *config) *int64 { return &c.batchBytes })
}

// WithWriteBatchTimeout is how long the writer lingers for more messages before
// it sends an incomplete partition batch, so that concurrent publishers share
// produce requests at the cost of that much latency each.
//
// The default is no linger: the messages of one Publish call are sent as
// soon as they are queued (one request per partition, up to the batch size).
// kafka-go's own default of one second would make every single Publish wait
// a second.
func WithWriteBatchTimeout(d time.Duration) Option {
	return nonNegative("batch timeout", d, func(c *config) *time.Duration { return &c.batchTimeout })
}

// WithRequiredAcks sets how many replicas must acknowledge a write before
// Publish returns: kafka.RequireNone, kafka.RequireOne or kafka.RequireAll
// (the default here, unlike kafka-go's RequireNone, because Publish
// promises that the messages were stored).
func WithRequiredAcks(acks kafka.RequiredAcks) Option {
	return optionFunc(func(c *config) {
		switch acks {
		case kafka.RequireNone, kafka.RequireOne, kafka.RequireAll:
			c.requiredAcks = acks
		default:
			c.invalid("required acks %d", acks)
		}
	})
}

// WithCompression compresses produced batches with codec (kafka.Gzip,
// kafka.Snappy, kafka.Lz4, kafka.Zstd). The default is none.
func WithCompression(codec kafka.Compression) Option {
	return optionFunc(func(c *config) { c.compression = codec })
}

// WithBalancer chooses the partition of messages that do not name one in
// Message.Partition. The default sends keyed messages to the partition the
// Java client would choose (murmur2 of the key) and spreads keyless ones
// round-robin.
func WithBalancer(b kafka.Balancer) Option {
	return optionFunc(func(c *config) { c.balancer = b })
}

// WithWriteTimeout bounds one produce request. kafka-go's default is 10s.
func WithWriteTimeout(d time.Duration) Option {
	return positive("write timeout", d, func(c *config) *time.Duration { return &c.writeTimeout })
}

// WithWriteAttempts caps how many times the writer tries a produce request
// that failed with a retriable error. kafka-go's default is 10.
func WithWriteAttempts(n int) Option {
	return positive("write attempts", n, func(c *config) *int { return &c.writeRetries })
}

// WithWriterConfig lets fn adjust the kafka-go Writer after the transport
// configured it, for settings without an option of their own. fn must not
// change Addr, Topic, Balancer or Transport.
func WithWriterConfig(fn func(*kafka.Writer)) Option {
	return optionFunc(func(c *config) {
		if fn != nil {
			c.writerHooks = append(c.writerHooks, fn)
		}
	})
}

// WithMinBytes is the least data a fetch asks the broker to wait for (up to
// the max wait). It must not exceed the max bytes (WithMaxBytes). kafka-go's
// default is 1.
func WithMinBytes(n int) Option {
	return positive("min bytes", n, func(c *config) *int { return &c.minBytes })
}

// WithMaxBytes caps the data one fetch returns; it must exceed the largest
// message. kafka-go's default is 1 MB (1e6 bytes).
func WithMaxBytes(n int) Option {
	return positive("max bytes", n, func(c *config) *int { return &c.maxBytes })
}

// WithMaxWait is how long a fetch waits on the broker for min bytes to
// arrive. The default is DefaultMaxWait.
func WithMaxWait(d time.Duration) Option {
	return positive("max wait", d, func(c *config) *time.Duration { return &c.maxWait })
}

// WithQueueCapacity is how many fetched messages each partition reader
// buffers ahead of the handler. kafka-go's default is 100.
func WithQueueCapacity(n int) Option {
	return positive("queue capacity", n, func(c *config) *int { return &c.queueCapacity })
}

// WithStartOffset sets where subscriptions start reading, kafka.FirstOffset
// or kafka.LastOffset, for every subscription of the transport;
// StartOffset overrides it per subscription.
//
// A group subscription uses it only for partitions where the group has no
// committed offset; its default is kafka.FirstOffset, so that a new group
// misses nothing published after Subscribe returned, even while it is still
// joining. A subscription without a group uses it always; its default is
// kafka.LastOffset taken when Subscribe is called, so it receives exactly
// the messages published after Subscribe returned.
func WithStartOffset(offset int64) Option {
	return optionFunc(func(c *config) {
		if offset != kafka.FirstOffset && offset != kafka.LastOffset {
			c.invalid("start offset %d: want kafka.FirstOffset or kafka.LastOffset", offset)
			return
		}
		c.startOffset = offset
	})
}

// WithCommitInterval commits acknowledged offsets every d instead of once
// per acknowledgement. Ack then returns before the offset is stored; offsets
// not yet committed are committed when the partition is revoked or the
// subscription closes, and are lost (the messages are delivered again) if
// the process dies first. The default, 0, commits synchronously: Ack returns
// once the broker stored the offset.
func WithCommitInterval(d time.Duration) Option {
	return nonNegative("commit interval", d, func(c *config) *time.Duration { return &c.commitInterval })
}

// WithHeartbeatInterval sets how often a group member heartbeats; it is
// also how quickly members notice a rebalance. kafka-go's default is 3s.
func WithHeartbeatInterval(d time.Duration) Option {
	return positive("heartbeat interval", d, func(c *config) *time.Duration { return &c.heartbeatInterval })
}

// WithSessionTimeout sets how long the coordinator waits for a heartbeat
// before it evicts a member. It must lie within the broker's
// group.min.session.timeout.ms and group.max.session.timeout.ms. kafka-go's
// default is 30s.
func WithSessionTimeout(d time.Duration) Option {
	return positive("session timeout", d, func(c *config) *time.Duration { return &c.sessionTimeout })
}

// WithRebalanceTimeout sets how long the coordinator waits for members to
// rejoin during a rebalance. A member finishes its in-flight deliveries and
// commits them before it rejoins, so this also bounds how long a handler may
// run across a rebalance. kafka-go's default is 30s.
func WithRebalanceTimeout(d time.Duration) Option {
	return positive("rebalance timeout", d, func(c *config) *time.Duration { return &c.rebalanceTimeout })
}

// WithJoinGroupBackoff sets the wait before joining a group again after a
// failed join. kafka-go's default is 5s.
func WithJoinGroupBackoff(d time.Duration) Option {
	return positive("join group backoff", d, func(c *config) *time.Duration { return &c.joinGroupBackoff })
}

// WithPartitionWatchInterval sets how often group members look for new
// partitions of their topic (and rebalance when there are). kafka-go's
// default is 5s.
func WithPartitionWatchInterval(d time.Duration) Option {
	return positive("partition watch interval", d, func(c *config) *time.Duration { return &c.partitionWatch })
}

// WithGroupBalancers sets the partition assignment strategies offered to
// the group, in order of preference. kafka-go's default is range, then
// round-robin.
func WithGroupBalancers(bs ...kafka.GroupBalancer) Option {
	return optionFunc(func(c *config) { c.groupBalancers = append([]kafka.GroupBalancer(nil), bs...) })
}

// WithReaderConfig lets fn adjust the kafka-go ReaderConfig of every
// partition reader after the transport configured it. fn must not change
// Brokers, Topic, Partition or GroupID.
func WithReaderConfig(fn func(*kafka.ReaderConfig)) Option {
	return optionFunc(func(c *config) {
		if fn != nil {
			c.readerHooks = append(c.readerHooks, fn)
		}
	})
}

// WithConsumerGroupConfig lets fn adjust the kafka-go ConsumerGroupConfig of
// every group subscription after the transport configured it. fn must not
// change ID, Brokers or Topics.
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
// or not the brokers allow automatic topic creation.
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
