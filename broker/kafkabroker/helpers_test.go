package kafkabroker_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/kafkatest"
)

// wait bounds every wait for a condition in this package's tests. Most
// involve a consumer group join, which on a loaded machine (a race build
// of every package's tests on two cores) can take far longer than on an
// idle one; a passing test never waits this long.
const wait = 2 * time.Minute

func newTransport(t *testing.T, c *kafkatest.Cluster, opts ...kafkabroker.Option) *kafkabroker.Transport {
	t.Helper()
	return mustTransport(t, c, opts...)
}

func mustTransport(t testing.TB, c *kafkatest.Cluster, opts ...kafkabroker.Option) *kafkabroker.Transport {
	t.Helper()
	tr, err := kafkabroker.New(append(c.TransportOptions(), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = tr.Close(ctx)
	})
	return tr
}

// newBroker returns a broker over a new transport, closed when the test
// ends. It is not started.
func newBroker(t *testing.T, c *kafkatest.Cluster, opts ...kafkabroker.Option) *broker.Broker {
	t.Helper()
	b := broker.New(newTransport(t, c, opts...))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("close broker: %v", err)
		}
	})
	return b
}

func start(t *testing.T, b *broker.Broker) {
	t.Helper()
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// newTopic creates a topic with a name unique to the test.
func newTopic(t *testing.T, c *kafkatest.Cluster, partitions int) string {
	t.Helper()
	topic := topicName(t)
	c.CreateTopic(t, topic, partitions)
	return topic
}

// topicName returns a topic name unique to the test.
func topicName(t *testing.T) string {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := strings.NewReplacer("/", "-", "_", "-").Replace(strings.ToLower(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	return "kb-" + name + "-" + hex.EncodeToString(rnd[:])
}

// committed returns the group's committed offsets of topic by partition;
// partitions without a commit are absent.
func committed(t *testing.T, c *kafkatest.Cluster, group, topic string, partitions int) map[int]int64 {
	t.Helper()
	ids := make([]int, partitions)
	for i := range ids {
		ids[i] = i
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	res, err := c.Client().OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ids}})
	if err != nil {
		t.Fatalf("offset fetch: %v", err)
	}
	if res.Error != nil {
		t.Fatalf("offset fetch: %v", res.Error)
	}
	out := make(map[int]int64)
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("offset fetch of partition %d: %v", p.Partition, p.Error)
		}
		if p.CommittedOffset >= 0 {
			out[p.Partition] = p.CommittedOffset
		}
	}
	return out
}

// eventually polls cond until it holds or wait passes.
func eventually(t *testing.T, cond func() bool, format string, args ...any) {
	t.Helper()
	testutil.Eventually(t, wait, cond, fmt.Sprintf(format, args...))
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("nothing received within %v", wait)
		var zero T
		return zero
	}
}

// collect subscribes to topic in group "g" on b, which it starts, and
// returns a channel of copies of the delivered messages.
func collect(t *testing.T, b *broker.Broker, topic string) <-chan *broker.Message {
	t.Helper()
	got := make(chan *broker.Message, 10)
	if err := b.Subscribe(topic, func(_ context.Context, m *broker.Message) error {
		got <- m.Clone()
		return nil
	}, broker.Group("g")); err != nil {
		t.Fatal(err)
	}
	start(t, b)
	return got
}
