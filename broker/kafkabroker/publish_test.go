package kafkabroker_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/testutil/kafkatest"
)

// A batch of messages with different keys (none, empty, binary, repeated),
// a tombstone and hostile headers round-trips byte for byte, and each
// delivery reports where it came from.
func TestPublishBatchMixedKeys(t *testing.T) {
	c := kafkatest.New(t)
	const partitions, group = 3, "mixed"
	topic := newTopic(t, c, partitions)

	type sent struct {
		key, body []byte
		headers   broker.Headers
	}
	cases := []sent{
		{key: []byte("alpha"), body: []byte("a1")},
		{key: []byte("beta"), body: []byte("b1")},
		{key: nil, body: []byte("no key")},
		{key: []byte{}, body: []byte("empty key")},
		{key: []byte{0x00, 0xff, 0x10}, body: []byte{0xde, 0xad, 0x00}},
		{key: []byte("alpha"), body: []byte("a2")},
		{key: []byte("alpha"), body: nil}, // tombstone
		{key: []byte("gamma"), body: []byte{}},
	}
	msgs := make([]*broker.Message, len(cases))
	for i, sc := range cases {
		m := &broker.Message{Destination: topic, Key: sc.key, Body: sc.body}
		m.Headers.Add("x-index", string(rune('a'+i)))
		m.Headers.Add("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
		m.Headers.Add("X-Mixed-Case", "Value")
		m.Headers.Add("x-dup", "one")
		m.Headers.Add("x-dup", "two")
		m.Headers.Add("x-binary", "\x00\xff\xfe")
		m.Headers.Add("x-empty", "")
		cases[i].headers = m.Headers.Clone()
		msgs[i] = m
	}

	b := newBroker(t, c)
	got := make(chan *broker.Message, len(cases))
	if err := b.Subscribe(topic, func(_ context.Context, m *broker.Message) error {
		got <- m.Clone()
		return nil
	}, broker.Group(group)); err != nil {
		t.Fatal(err)
	}
	start(t, b)
	before := time.Now().Add(-time.Second)
	if err := b.PublishBatch(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}

	byIndex := make(map[string]*broker.Message)
	for range cases {
		m := recv(t, got)
		byIndex[m.Headers.Get("x-index")] = m
	}
	partitionOf := make(map[string]int32)
	offsets := make(map[int32][]int64)
	for i, sc := range cases {
		m := byIndex[string(rune('a'+i))]
		if m == nil {
			t.Fatalf("message %d not received", i)
		}
		// kafka-go reads a zero-length key or value as nil, so only a
		// null one is guaranteed to come back nil (see the package doc).
		if !bytes.Equal(m.Key, sc.key) || (sc.key == nil && m.Key != nil) {
			t.Errorf("message %d: key %q (nil %v), want %q (nil %v)", i, m.Key, m.Key == nil, sc.key, sc.key == nil)
		}
		if !bytes.Equal(m.Body, sc.body) || (sc.body == nil && m.Body != nil) {
			t.Errorf("message %d: body %q (nil %v), want %q (nil %v)", i, m.Body, m.Body == nil, sc.body, sc.body == nil)
		}
		if !slices.Equal(m.Headers, sc.headers) {
			t.Errorf("message %d: headers %q, want %q", i, m.Headers, sc.headers)
		}
		d := m.Delivery
		if m.Destination != topic || d.Subscription != topic || d.Group != group || d.DeliveryCount != 1 {
			t.Errorf("message %d: destination %q subscription %q group %q count %d", i, m.Destination, d.Subscription, d.Group, d.DeliveryCount)
		}
		if d.Partition < 0 || d.Partition >= partitions || d.Offset < 0 {
			t.Errorf("message %d: partition %d offset %d", i, d.Partition, d.Offset)
		}
		if d.Timestamp.Before(before) || d.Timestamp.After(time.Now().Add(time.Second)) {
			t.Errorf("message %d: timestamp %v", i, d.Timestamp)
		}
		if sc.key != nil {
			if p, ok := partitionOf[string(sc.key)]; ok && p != d.Partition {
				t.Errorf("key %q went to partitions %d and %d", sc.key, p, d.Partition)
			}
			partitionOf[string(sc.key)] = d.Partition
		}
		offsets[d.Partition] = append(offsets[d.Partition], d.Offset)
	}
	for p, offs := range offsets {
		slices.Sort(offs)
		if len(slices.Compact(offs)) != len(offs) {
			t.Errorf("partition %d: duplicate offsets %v", p, offs)
		}
	}
}

// Message.Partition is honoured whatever the key says; a partition the
// topic does not have fails that message alone, and the BatchError says
// which one.
func TestExplicitPartition(t *testing.T) {
	c := kafkatest.New(t)
	topic := newTopic(t, c, 3)
	b := newBroker(t, c)
	got := collect(t, b, topic)

	msgs := []*broker.Message{
		{Destination: topic, Key: []byte("k1"), Body: []byte("to 2"), Partition: new(int32(2))},
		{Destination: topic, Key: []byte("k2"), Body: []byte("to 7"), Partition: new(int32(7))},
		{Destination: topic, Key: []byte("k3"), Body: []byte("to 2 again"), Partition: new(int32(2))},
		{Destination: topic, Body: []byte("to -1"), Partition: new(int32(-1))},
		{Destination: topic, Key: []byte("k1"), Body: []byte("to 0"), Partition: new(int32(0))},
	}
	err := b.PublishBatch(context.Background(), msgs)
	var be broker.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("publish: %v, want a BatchError", err)
	}
	if failed := be.Failed(); !slices.Equal(failed, []int{1, 3}) {
		t.Fatalf("failed %v, want [1 3]: %v", failed, err)
	}
	if !errors.Is(be[1], kafkabroker.ErrUnknownPartition) || !errors.Is(be[3], kafkabroker.ErrUnknownPartition) {
		t.Fatalf("errors %v, want ErrUnknownPartition", be)
	}
	want := map[string]int32{"to 2": 2, "to 2 again": 2, "to 0": 0}
	for range want {
		m := recv(t, got)
		if p, ok := want[string(m.Body)]; !ok || p != m.Delivery.Partition {
			t.Errorf("%q arrived on partition %d", m.Body, m.Delivery.Partition)
		}
	}

	// A single message to a missing partition fails with a plain error.
	err = b.Publish(context.Background(), &broker.Message{Destination: topic, Body: []byte("x"), Partition: new(int32(3))})
	if !errors.Is(err, kafkabroker.ErrUnknownPartition) || errors.As(err, &be) {
		t.Fatalf("single publish to partition 3: %v", err)
	}
}

// kafka.WriteErrors from a batch that the broker accepts in part become a
// BatchError aligned with the batch.
func TestPartialBatchFailure(t *testing.T) {
	c := kafkatest.New(t)
	open := newTopic(t, c, 1)
	limited := open + "-limited"
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	res, err := c.Client().CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: limited, NumPartitions: 1, ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "max.message.bytes", ConfigValue: "512"}},
	}}})
	if err != nil || res.Errors[limited] != nil {
		t.Fatalf("create topic: %v %v", err, res.Errors)
	}

	tr := newTransport(t, c, kafkabroker.WithWriterConfig(func(w *kafka.Writer) { w.MaxAttempts = 1 }))
	big := bytes.Repeat([]byte("x"), 4096)
	err = tr.Publish(ctx, []*broker.Message{
		{Destination: open, Body: []byte("fits")},
		{Destination: limited, Body: big},
		{Destination: open, Body: big},
	})
	var be broker.BatchError
	if !errors.As(err, &be) || len(be) != 3 {
		t.Fatalf("publish: %v, want a BatchError of 3", err)
	}
	if be[0] != nil || be[2] != nil || !errors.Is(be[1], kafka.MessageSizeTooLarge) {
		t.Fatalf("batch errors %v, want only message 1 failed with MessageSizeTooLarge", be)
	}
}

func TestPublishAfterClose(t *testing.T) {
	c := kafkatest.New(t)
	topic := newTopic(t, c, 1)
	tr := newTransport(t, c)
	if err := tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := tr.Publish(context.Background(), []*broker.Message{{Destination: topic, Body: []byte("late")}})
	if !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("publish after close: %v, want ErrClosed", err)
	}
	if err := tr.Close(context.Background()); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// A Publish whose ctx is already cancelled fails with the ctx's error and
// leaves the caller free to reuse its buffers.
func TestPublishCancelled(t *testing.T) {
	c := kafkatest.New(t)
	topic := newTopic(t, c, 1)
	tr := newTransport(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	body := []byte("cancelled")
	err := tr.Publish(ctx, []*broker.Message{{Destination: topic, Body: body}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("publish with a cancelled ctx: %v", err)
	}
	copy(body, "overwrite")
}

// With WithAutoCreateTopics the transport creates missing topics on first
// use, publishing and subscribing alike.
func TestAutoCreateTopics(t *testing.T) {
	c := kafkatest.New(t)
	topic := newTopic(t, c, 1) + "-auto"
	b := newBroker(t, c, kafkabroker.WithAutoCreateTopics(2, 1))
	got := make(chan string, 1)
	if err := b.Subscribe(topic, func(_ context.Context, m *broker.Message) error {
		got <- string(m.Body)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	start(t, b)
	if err := b.Publish(context.Background(), &broker.Message{Destination: topic, Body: []byte("created")}); err != nil {
		t.Fatal(err)
	}
	if v := recv(t, got); v != "created" {
		t.Fatalf("got %q", v)
	}
	// A fresh client: the cluster's own one caches metadata from before.
	fresh := &kafka.Client{Addr: kafka.TCP(c.Addrs()...), Transport: &kafka.Transport{}}
	defer fresh.Transport.(*kafka.Transport).CloseIdleConnections()
	md, err := fresh.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(md.Topics) != 1 || len(md.Topics[0].Partitions) != 2 {
		t.Fatalf("metadata of the created topic: %+v %v", md, err)
	}
}

// With WithAutoCreateTopics the first request creates the reply topic too,
// with one partition whatever the partitions asked for the other topics.
func TestAutoCreateReplyTopic(t *testing.T) {
	c := kafkatest.New(t)
	replies := newTopic(t, c, 1) + "-replies"
	tr := newTransport(t, c, kafkabroker.WithAutoCreateTopics(3, 1), kafkabroker.WithReplyTopic(replies))
	inbox, err := tr.OpenInbox(context.Background(), func(string, *broker.Message, error) {})
	if err != nil {
		t.Fatal(err)
	}
	defer inbox.Close(context.Background())
	fresh := &kafka.Client{Addr: kafka.TCP(c.Addrs()...), Transport: &kafka.Transport{}}
	defer fresh.Transport.(*kafka.Transport).CloseIdleConnections()
	md, err := fresh.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{replies}})
	if err != nil || len(md.Topics) != 1 || md.Topics[0].Error != nil || len(md.Topics[0].Partitions) != 1 {
		t.Fatalf("metadata of the reply topic: %+v %v", md, err)
	}
}

// Without WithAutoCreateTopics no request of the transport lets a broker
// that allows automatic creation create a topic: publishing to a missing
// topic fails, and the topic still does not exist. A topic created
// elsewhere after the transport read its metadata is found, not refused.
func TestNoAutoCreateWithoutOption(t *testing.T) {
	c := kafkatest.New(t, kafkatest.WithKfakeOptions(kfake.AllowAutoTopicCreation()))
	if c.External() {
		t.Skip("needs a cluster that allows automatic topic creation")
	}
	tr := newTransport(t, c, kafkabroker.WithMetadataMaxAge(200*time.Millisecond))
	defer tr.Close(context.Background())
	known := newTopic(t, c, 1)
	if err := tr.Publish(context.Background(), []*broker.Message{{Destination: known, Body: []byte("x")}}); err != nil {
		t.Fatal(err) // the transport has read the cluster's metadata now
	}

	missing := known + "-missing"
	ctx := context.Background()
	for _, m := range []*broker.Message{
		{Destination: missing, Body: []byte("x")},
		{Destination: missing, Body: []byte("x"), Partition: new(int32(0))},
	} {
		if err := tr.Publish(ctx, []*broker.Message{m}); !errors.Is(err, kafka.UnknownTopicOrPartition) {
			t.Fatalf("publish to a missing topic: %v, want UnknownTopicOrPartition", err)
		}
	}
	fresh := &kafka.Client{Addr: kafka.TCP(c.Addrs()...), Transport: &kafka.Transport{}}
	defer fresh.Transport.(*kafka.Transport).CloseIdleConnections()
	md, err := fresh.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{missing}})
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Topics) == 1 && md.Topics[0].Error == nil {
		t.Fatalf("the transport created %s", missing)
	}

	later := known + "-later"
	c.CreateTopic(t, later, 2)
	err = tr.Publish(context.Background(), []*broker.Message{{Destination: later, Body: []byte("x"), Partition: new(int32(1))}})
	if err != nil {
		t.Fatalf("publish to a topic created after the transport's metadata: %v", err)
	}
}
