package kafkabroker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/testutil/kafkatest"
)

// Subscriptions without a group each receive every message published after
// they subscribed, and nothing from before unless asked to start at the
// first offset.
func TestNoGroupFanOut(t *testing.T) {
	c := kafkatest.New(t)
	topic := newTopic(t, c, 3)
	b := newBroker(t, c)
	if err := b.Publish(context.Background(), &broker.Message{Destination: topic, Body: []byte("history")}); err != nil {
		t.Fatal(err)
	}

	inboxes := make([]chan string, 3)
	for i := range inboxes {
		inboxes[i] = make(chan string, 20)
		opts := []broker.SubscribeOption{}
		if i == 2 {
			opts = append(opts, kafkabroker.StartOffset(kafka.FirstOffset))
		}
		in := inboxes[i]
		if err := b.Subscribe(topic, func(_ context.Context, m *broker.Message) error {
			if m.Delivery.Group != "" {
				return fmt.Errorf("group %q on a subscription without one", m.Delivery.Group)
			}
			in <- string(m.Body)
			return nil
		}, opts...); err != nil {
			t.Fatal(err)
		}
	}
	start(t, b)
	const n = 6
	for i := range n {
		if err := b.Publish(context.Background(), &broker.Message{Destination: topic, Body: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	for i, in := range inboxes {
		want := n
		if i == 2 {
			want++ // and the history
		}
		var got []string
		for range want {
			got = append(got, recv(t, in))
		}
		slices.Sort(got)
		if len(slices.Compact(got)) != want || (i == 2) != slices.Contains(got, "history") {
			t.Errorf("subscription %d got %q", i, got)
		}
	}
}

func TestNoGroupUnknownTopic(t *testing.T) {
	c := kafkatest.New(t)
	tr := newTransport(t, c)
	_, err := tr.Subscribe(context.Background(), driver.SubscriptionSpec{Destination: "kb-missing-topic", Concurrency: 1},
		func(context.Context, []*broker.Message, driver.Acknowledger) {})
	if !errors.Is(err, kafkabroker.ErrUnknownTopic) {
		t.Fatalf("subscribe to a missing topic without a group: %v, want ErrUnknownTopic", err)
	}
}

func TestSubscribeRejectsForeignOptions(t *testing.T) {
	c := kafkatest.New(t)
	topic := newTopic(t, c, 1)
	tr := newTransport(t, c)
	noop := func(context.Context, []*broker.Message, driver.Acknowledger) {}
	_, err := tr.Subscribe(context.Background(), driver.SubscriptionSpec{Destination: topic, TransportOptions: []driver.TransportOption{foreignOption{}}}, noop)
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("foreign option: %v, want errors.ErrUnsupported", err)
	}
	b := broker.New(tr)
	err = b.Subscribe(topic, func(context.Context, *broker.Message) error { return nil }, kafkabroker.StartOffset(-42))
	if !errors.Is(err, broker.ErrInvalid) {
		t.Fatalf("start offset -42: %v, want ErrInvalid at Subscribe", err)
	}
}

// A NATS option given to a broker over Kafka fails Subscribe itself, not
// Start, with an error that names the option and both transports.
func TestSubscribeNamesForeignOption(t *testing.T) {
	tr, err := kafkabroker.New(kafkabroker.WithSeedBrokers("localhost:1")) // never dialled
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(tr)
	defer b.Close(context.Background())
	err = b.Subscribe("orders", func(context.Context, *broker.Message) error { return nil }, natsbroker.Stream("ORDERS"))
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("NATS option on Kafka: %v, want errors.ErrUnsupported", err)
	}
	for _, want := range []string{"natsbroker.Stream(ORDERS)", "nats", "kafka"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// A batch subscription delivers up to BatchSize messages from all
// partitions, retries the whole batch on failure with a higher
// DeliveryCount, and commits every partition of the batch on success.
func TestBatchCommitsWholeBatch(t *testing.T) {
	c := kafkatest.New(t)
	const partitions, group, n = 3, "batch", 9
	topic := newTopic(t, c, partitions)
	b := newBroker(t, c)
	type delivery struct {
		bodies []string
		count  int
	}
	got := make(chan delivery, 10)
	failed := false
	if err := b.SubscribeBatch(topic, func(_ context.Context, msgs []*broker.Message) error {
		d := delivery{count: msgs[0].Delivery.DeliveryCount}
		for _, m := range msgs {
			if m.Delivery.DeliveryCount != d.count {
				return broker.Permanent(errors.New("mixed delivery counts in one batch"))
			}
			d.bodies = append(d.bodies, string(m.Body))
		}
		got <- d
		if !failed {
			failed = true // the lane runs one delivery at a time
			return errors.New("first batch fails once")
		}
		return nil
	}, broker.Group(group), broker.Batch(n, 2*time.Second),
		broker.RetryBackoff(broker.ConstantBackoff(10*time.Millisecond))); err != nil {
		t.Fatal(err)
	}
	start(t, b)
	msgs := make([]*broker.Message, n)
	for i := range msgs {
		msgs[i] = &broker.Message{Destination: topic, Body: []byte(strconv.Itoa(i))}
	}
	if err := b.PublishBatch(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}

	first := recv(t, got)
	if first.count != 1 {
		t.Fatalf("first delivery count %d", first.count)
	}
	retry := recv(t, got)
	if retry.count != 2 || !slices.Equal(retry.bodies, first.bodies) {
		t.Fatalf("retry %v (count %d), want the same batch %v with count 2", retry.bodies, retry.count, first.bodies)
	}
	all := slices.Clone(first.bodies)
	for len(all) < n {
		all = append(all, recv(t, got).bodies...)
	}
	slices.Sort(all)
	if len(slices.Compact(all)) != n {
		t.Fatalf("batches held %q, want %d distinct messages", all, n)
	}
	// Round-robin put 3 messages on each partition.
	eventually(t, func() bool {
		off := committed(t, c, group, topic, partitions)
		return off[0] == 3 && off[1] == 3 && off[2] == 3
	}, "all partitions committed to 3")
}

// With a commit interval, Ack returns at once and the offsets reach the
// group with the next periodic commit, or at the latest when the
// subscription closes.
func TestCommitInterval(t *testing.T) {
	c := kafkatest.New(t)
	const group = "interval"
	topic := newTopic(t, c, 1)
	commits := recordCommits(t, c, group, topic)
	tr := newTransport(t, c, kafkabroker.WithReaderConfig(func(rc *kafka.ReaderConfig) { rc.CommitInterval = time.Hour }))
	b := broker.New(tr)
	done := make(chan struct{}, 10)
	if err := b.Subscribe(topic, func(context.Context, *broker.Message) error {
		done <- struct{}{}
		return nil
	}, broker.Group(group)); err != nil {
		t.Fatal(err)
	}
	start(t, b)
	for i := range 5 {
		if err := b.Publish(context.Background(), &broker.Message{Destination: topic, Body: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		recv(t, done)
	}
	if got := commits.get(); len(got) != 0 {
		t.Fatalf("committed %v before the interval passed", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := commits.get(); !slices.Equal(got, []int64{5}) {
		t.Fatalf("commits %v, want one commit of offset 5 on close", got)
	}
}

// A negative ReaderConfig.CommitInterval would make kafka-go's ticker
// panic in a goroutine: Subscribe refuses it.
func TestCommitIntervalNegative(t *testing.T) {
	tr, err := kafkabroker.New(kafkabroker.WithSeedBrokers("localhost:1"), // never dialled
		kafkabroker.WithReaderConfig(func(rc *kafka.ReaderConfig) { rc.CommitInterval = -time.Second }))
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(tr)
	defer b.Close(context.Background())
	err = b.Subscribe("orders", func(context.Context, *broker.Message) error { return nil }, broker.Group("g"))
	if !errors.Is(err, broker.ErrInvalid) || !strings.Contains(err.Error(), "commit interval") {
		t.Fatalf("negative commit interval: %v, want ErrInvalid naming it", err)
	}
}

// A group subscription to a topic that does not exist yet waits for it.
func TestGroupWaitsForTopic(t *testing.T) {
	c := kafkatest.New(t)
	topic := newTopic(t, c, 1) + "-later"
	b := newBroker(t, c)
	got := make(chan string, 1)
	if err := b.Subscribe(topic, func(_ context.Context, m *broker.Message) error {
		got <- string(m.Body)
		return nil
	}, broker.Group("patient")); err != nil {
		t.Fatal(err)
	}
	start(t, b)
	c.CreateTopic(t, topic, 2)
	if err := b.Publish(context.Background(), &broker.Message{Destination: topic, Body: []byte("finally")}); err != nil {
		t.Fatal(err)
	}
	if v := recv(t, got); v != "finally" {
		t.Fatalf("got %q", v)
	}
}

// foreignOption claims to be a Kafka option but is not one of the
// transport's own.
type foreignOption struct{}

func (foreignOption) TransportName() string { return "kafka" }
