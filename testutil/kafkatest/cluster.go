package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tracebus/tracebus/broker/kafkabroker"
)

// EnvBrokers names the environment variable that, when set to a
// comma-separated list of "host:port" seed brokers, makes New and Start use
// that cluster instead of starting one in process.
const EnvBrokers = "TRACEBUS_KAFKA_BROKERS"

// Option configures an in-process cluster. Options are ignored when
// EnvBrokers selects an external cluster.
type Option interface {
	apply(*config)
}

type config struct {
	brokers int
	kfake   []kfake.Opt
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithNumBrokers sets how many brokers the in-process cluster runs: 1 (the
// default) or more, to exercise partition leaders spread over brokers and a
// group coordinator that is not the seed broker.
func WithNumBrokers(n int) Option {
	return optionFunc(func(c *config) { c.brokers = n })
}

// WithKfakeOptions passes options to kfake.NewCluster, such as
// kfake.SeedTopics or kfake.EnableSASL.
func WithKfakeOptions(opts ...kfake.Opt) Option {
	return optionFunc(func(c *config) { c.kfake = append(c.kfake, opts...) })
}

// Cluster is a running Kafka cluster for tests.
type Cluster struct {
	addrs  []string
	fake   *kfake.Cluster
	client *kafka.Client
	once   sync.Once

	net       *brokerNet    // the in-process brokers' connections
	mu        sync.Mutex    // guards nodePorts
	nodePorts map[int32]int // in-process broker id -> listening port
}

// New starts a cluster (or connects to the one named by EnvBrokers) and
// closes it when t ends. It fails t when the cluster cannot start.
func New(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	c, err := Start(opts...)
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// Start starts a cluster (or connects to the one named by EnvBrokers). The
// caller closes it with Close.
func Start(opts ...Option) (*Cluster, error) {
	cfg := config{brokers: 1}
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	c := &Cluster{}
	if env := strings.TrimSpace(os.Getenv(EnvBrokers)); env != "" {
		for a := range strings.SplitSeq(env, ",") {
			if a = strings.TrimSpace(a); a != "" {
				c.addrs = append(c.addrs, a)
			}
		}
	} else {
		if cfg.brokers < 1 {
			return nil, fmt.Errorf("kafkatest: %d brokers", cfg.brokers)
		}
		c.net = newBrokerNet()
		fake, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(cfg.brokers), kfake.ListenFn(c.net.listen)}, cfg.kfake...)...)
		if err != nil {
			return nil, fmt.Errorf("kafkatest: start kfake: %w", err)
		}
		c.fake = fake
		c.addrs = fake.ListenAddrs()
		// kfake numbers its brokers from 0 in the order it lists them.
		c.nodePorts = make(map[int32]int, len(c.addrs))
		for i, a := range c.addrs {
			_, p, err := net.SplitHostPort(a)
			if err != nil {
				fake.Close()
				return nil, fmt.Errorf("kafkatest: broker address %q: %w", a, err)
			}
			c.nodePorts[int32(i)], _ = strconv.Atoi(p)
		}
	}
	if len(c.addrs) == 0 {
		return nil, errors.New("kafkatest: no broker addresses")
	}
	c.client = &kafka.Client{Addr: kafka.TCP(c.addrs...), Timeout: 10 * time.Second, Transport: &kafka.Transport{}}
	return c, nil
}

// Addrs returns the seed broker addresses.
func (c *Cluster) Addrs() []string { return append([]string(nil), c.addrs...) }

// External reports whether the cluster is an external one named by
// EnvBrokers.
func (c *Cluster) External() bool { return c.fake == nil }

// Fake returns the in-process kfake cluster, or nil for an external one.
func (c *Cluster) Fake() *kfake.Cluster { return c.fake }

// Client returns a kafka-go Client for the cluster, for administrative
// calls and for checking what a test did (OffsetFetch, ListOffsets). Its
// transport caches topic metadata for a few seconds (kafka-go's
// MetadataTTL): to see a topic created by someone else at once, use a
// kafka.Client with a transport of its own.
func (c *Cluster) Client() *kafka.Client { return c.client }

// CreateTopic creates topic with the given number of partitions (replication
// factor 1) and fails t if that does not work. An existing topic is left as
// it is.
func (c *Cluster) CreateTopic(t testing.TB, topic string, partitions int) {
	t.Helper()
	c.CreateReplicatedTopic(t, topic, partitions, 1)
}

// CreateReplicatedTopic is CreateTopic with a replication factor, at most
// the number of brokers.
func (c *Cluster) CreateReplicatedTopic(t testing.TB, topic string, partitions, replicas int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.createTopic(ctx, topic, partitions, replicas); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
}

// CreateTopicContext is CreateTopic for code without a testing.TB.
func (c *Cluster) CreateTopicContext(ctx context.Context, topic string, partitions int) error {
	return c.createTopic(ctx, topic, partitions, 1)
}

func (c *Cluster) createTopic(ctx context.Context, topic string, partitions, replicas int) error {
	res, err := c.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: replicas}},
	})
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	if terr := res.Errors[topic]; terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, terr)
	}
	return nil
}

// TransportOptions returns kafkabroker options for this cluster: its seed
// brokers and consumer group timings for tests (100ms heartbeats, the
// shortest session timeout brokers accept by default, quick join retries
// and short fetch waits), so that joins, rebalances and Close take
// milliseconds.
func (c *Cluster) TransportOptions() []kafkabroker.Option {
	return []kafkabroker.Option{
		kafkabroker.WithSeedBrokers(c.addrs...),
		kafkabroker.WithClientID("kafkatest"),
		kafkabroker.WithConsumerGroupConfig(func(gc *kafka.ConsumerGroupConfig) {
			gc.HeartbeatInterval = 100 * time.Millisecond
			gc.SessionTimeout = 6 * time.Second
			gc.RebalanceTimeout = 5 * time.Second
			gc.JoinGroupBackoff = 100 * time.Millisecond
			gc.PartitionWatchInterval = 500 * time.Millisecond
		}),
		kafkabroker.WithReaderConfig(func(rc *kafka.ReaderConfig) {
			rc.MaxWait = 100 * time.Millisecond
			rc.ReadBackoffMin = 10 * time.Millisecond
			rc.ReadBackoffMax = 200 * time.Millisecond
		}),
	}
}

// Close stops the in-process cluster and releases connections. It does
// nothing to an external cluster. Calling it again does nothing.
func (c *Cluster) Close() {
	c.once.Do(func() {
		if t, ok := c.client.Transport.(*kafka.Transport); ok {
			t.CloseIdleConnections()
		}
		if c.fake != nil {
			// A stalled broker's connections hold kfake goroutines:
			// release them before the cluster closes.
			c.net.resumeAll()
			c.fake.Close()
		}
	})
}
