package kafkabroker_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/broker/memory"
	"github.com/tracebus/tracebus/testutil/kafkatest"
)

// Hostile address and name options fail New with ErrInvalid naming
// the value; none of them is left to panic inside kafka-go later. The
// accepted spellings of the same addresses (comma lists, spaces around the
// commas) publish to a real cluster.
func TestHostileOptions(t *testing.T) {
	long := strings.Repeat("a", 250)
	for _, tc := range []struct {
		name  string
		opt   kafkabroker.Option
		value string // what the error must quote
	}{
		{"no brokers", kafkabroker.WithSeedBrokers(), "no seed brokers"},
		{"empty broker", kafkabroker.WithSeedBrokers(""), `""`},
		{"space", kafkabroker.WithSeedBrokers(" "), `" "`},
		{"trailing comma", kafkabroker.WithSeedBrokers("h1:9092,"), `"h1:9092,"`},
		{"lone comma", kafkabroker.WithSeedBrokers(","), `","`},
		{"space inside", kafkabroker.WithSeedBrokers("h 1:9092"), `"h 1:9092"`},
		{"tab inside", kafkabroker.WithSeedBrokers("h1:\t9092"), `"h1:\t9092"`},
		{"scheme", kafkabroker.WithSeedBrokers("kafka://h1:9092"), "without a scheme"},
		{"security protocol", kafkabroker.WithSeedBrokers("SASL_SSL://h1:9093"), `"SASL_SSL://h1:9093"`},
		{"scheme in a list", kafkabroker.WithSeedBrokers("h1:9092,kafka://h2:9092"), `"kafka://h2:9092"`},
		{"empty port", kafkabroker.WithSeedBrokers("h1:"), `"h1:"`},
		{"no host", kafkabroker.WithSeedBrokers(":9092"), "missing host"},
		{"port 0", kafkabroker.WithSeedBrokers("h1:0"), `"h1:0"`},
		{"port too big", kafkabroker.WithSeedBrokers("h1:65536"), `"65536"`},
		{"negative port", kafkabroker.WithSeedBrokers("h1:-1"), `"h1:-1"`},
		{"signed port", kafkabroker.WithSeedBrokers("h1:+80"), `"+80"`},
		{"named port", kafkabroker.WithSeedBrokers("h1:kafka"), `"kafka"`},
		{"bare IPv6", kafkabroker.WithSeedBrokers("::1"), "in brackets"},
		{"two colons", kafkabroker.WithSeedBrokers("h1:9092:1"), `"h1:9092:1"`},
		{"open bracket", kafkabroker.WithSeedBrokers("[::1"), `"[::1"`},
		{"NUL", kafkabroker.WithSeedBrokers("h\x001:9092"), `"h\x001:9092"`},
		{"slash", kafkabroker.WithSeedBrokers("h1/x:9092"), `"h1/x:9092"`},
		{"empty label", kafkabroker.WithSeedBrokers("h1..internal:9092"), `"h1..internal"`},
		{"long host", kafkabroker.WithSeedBrokers(strings.Repeat("a.", 130) + "b:9092"), "253"},
		{"empty client id", kafkabroker.WithClientID(""), `client id ""`},
		{"client id with spaces around", kafkabroker.WithClientID(" billing "), `" billing "`},
		{"client id with a newline", kafkabroker.WithClientID("bill\ning"), `"bill\ning"`},
		{"client id not UTF-8", kafkabroker.WithClientID("\xff"), `"\xff"`},
		{"long client id", kafkabroker.WithClientID(long), "250 bytes"},
		{"empty reply topic", kafkabroker.WithReplyTopic(""), `reply topic ""`},
		{"dot reply topic", kafkabroker.WithReplyTopic("."), `"."`},
		{"dot-dot reply topic", kafkabroker.WithReplyTopic(".."), `".."`},
		{"reply topic with a space", kafkabroker.WithReplyTopic("my replies"), `"my replies"`},
		{"reply topic with a slash", kafkabroker.WithReplyTopic("replies/a"), `"replies/a"`},
		{"reply topic not ASCII", kafkabroker.WithReplyTopic("réponses"), `"réponses"`},
		{"long reply topic", kafkabroker.WithReplyTopic(long), "250 bytes"},
		{"auto-create partitions", kafkabroker.WithAutoCreateTopics(-2, 1), "-2 partitions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := kafkabroker.New(tc.opt)
			if err == nil {
				tr.Close(context.Background())
				t.Fatal("New accepted the option")
			}
			if !errors.Is(err, broker.ErrInvalid) || !strings.HasPrefix(err.Error(), "kafkabroker: ") ||
				!strings.Contains(err.Error(), tc.value) {
				t.Fatalf("New: %v; want kafkabroker: ... %s ... ErrInvalid", err, tc.value)
			}
		})
	}

	c := kafkatest.New(t)
	addrs := c.Addrs()
	topic := newTopic(t, c, 1)
	for name, opt := range map[string]kafkabroker.Option{
		"comma list":               kafkabroker.WithSeedBrokers(strings.Join(addrs, ",")),
		"comma list with spaces":   kafkabroker.WithSeedBrokers(" " + strings.Join(addrs, " , ") + " "),
		"list and separate values": kafkabroker.WithSeedBrokers(strings.Join(addrs, ","), addrs[0]),
		"client id with a space":   kafkabroker.WithClientID("billing service"),
		"reply topic":              kafkabroker.WithReplyTopic("replies.billing-1_a"),
	} {
		t.Run(name, func(t *testing.T) {
			tr := newTransport(t, c, opt)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if err := tr.Publish(ctx, []*broker.Message{{Destination: topic, Body: []byte(name)}}); err != nil {
				t.Fatalf("publish: %v", err)
			}
		})
	}
}

// Broker addresses are stored as host:port, a bare host with Kafka's port.
func TestBrokerAddressForms(t *testing.T) {
	for in, want := range map[string]driver.Info{
		"kafka-1.internal":        {ServerAddress: "kafka-1.internal", ServerPort: 9092},
		" kafka-1:9093 , kafka-2": {ServerAddress: "kafka-1", ServerPort: 9093},
		"[::1]":                   {ServerAddress: "::1", ServerPort: 9092},
		"[::1]:19092":             {ServerAddress: "::1", ServerPort: 19092},
		"10.0.0.7:65535":          {ServerAddress: "10.0.0.7", ServerPort: 65535},
		"under_score.local.":      {ServerAddress: "under_score.local.", ServerPort: 9092},
	} {
		tr, err := kafkabroker.New(kafkabroker.WithSeedBrokers(in))
		if err != nil {
			t.Errorf("WithSeedBrokers(%q): %v", in, err)
			continue
		}
		if got := tr.Info(); got.ServerAddress != want.ServerAddress || got.ServerPort != want.ServerPort {
			t.Errorf("WithSeedBrokers(%q): server %s port %d, want %s %d", in, got.ServerAddress, got.ServerPort, want.ServerAddress, want.ServerPort)
		}
		tr.Close(context.Background())
	}
}

// A subscription's topic and group are checked by Kafka's rules when
// Subscribe is called.
func TestHostileSubscriptionNames(t *testing.T) {
	tr, err := kafkabroker.New()
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(tr)
	defer b.Close(context.Background())
	noop := func(context.Context, *broker.Message) error { return nil }
	for _, tc := range []struct {
		topic string
		opts  []broker.SubscribeOption
	}{
		{"orders.*", nil},
		{"my orders", nil},
		{"..", nil},
		{strings.Repeat("t", 250), nil},
		{"orders", []broker.SubscribeOption{broker.Group("bill\x00ing")}},
		{"orders", []broker.SubscribeOption{broker.Group(strings.Repeat("g", 250))}},
	} {
		if err := b.Subscribe(tc.topic, noop, tc.opts...); !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("Subscribe(%.20q): %v, want ErrInvalid", tc.topic, err)
		}
	}
}

// A publish to a missing topic fails at once (no wait for the metadata
// max age, set to an hour here), with an error that names the topic and the
// remedy and wraps ErrUnknownTopic; nothing is created. A topic created by
// someone else after the transport read its metadata is found at the next
// publish, without waiting for the metadata to expire.
func TestPublishMissingTopic(t *testing.T) {
	c := kafkatest.New(t)
	tr := newTransport(t, c, kafkabroker.WithMetadataMaxAge(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	known := newTopic(t, c, 2)
	if err := tr.Publish(ctx, []*broker.Message{{Destination: known, Body: []byte("x")}}); err != nil {
		t.Fatal(err) // the transport has read the cluster's metadata now
	}

	missing := known + "-missing"
	for _, msgs := range [][]*broker.Message{
		{{Destination: missing, Body: []byte("x")}},
		{{Destination: missing, Body: []byte("x"), Partition: new(int32(0))}},
	} {
		err := tr.Publish(ctx, msgs)
		if !errors.Is(err, kafkabroker.ErrUnknownTopic) || !errors.Is(err, kafka.UnknownTopicOrPartition) {
			t.Fatalf("publish to a missing topic: %v, want ErrUnknownTopic", err)
		}
		for _, want := range []string{"kafkabroker: publish " + missing + ": ", "create the topic", "kafkabroker.WithAutoCreateTopics"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
	}
	// In a batch, only the messages to the missing topic fail.
	batch := []*broker.Message{{Destination: known, Body: []byte("a")}, {Destination: missing, Body: []byte("b")}}
	var berr broker.BatchError
	if err := tr.Publish(ctx, batch); !errors.As(err, &berr) || berr[0] != nil || !errors.Is(berr[1], kafkabroker.ErrUnknownTopic) {
		t.Fatalf("batch with a missing topic: %v", err)
	}
	if !batch[0].Delivery.Stored {
		t.Error("the message to the existing topic was not stored")
	}
	dc, err := c.Client().DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{
		Resources: []kafka.DescribeConfigRequestResource{{ResourceType: kafka.ResourceTypeTopic, ResourceName: missing}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(dc.Resources) != 1 || dc.Resources[0].Error == nil {
		t.Errorf("the publish created %s", missing)
	}

	later := known + "-later"
	c.CreateTopic(t, later, 2)
	err = tr.Publish(ctx, []*broker.Message{{Destination: later, Body: []byte("x"), Partition: new(int32(1))}})
	if err != nil {
		t.Fatalf("publish to a topic created after the transport's metadata: %v", err)
	}
}

// A handler whose onward publish hits a missing topic is retried (the
// topic may be created meanwhile) and then dead-lettered; every log line
// on the way says which topic is missing and what to do.
func TestOnwardPublishMissingTopicLogs(t *testing.T) {
	c := kafkatest.New(t)
	kb := newBroker(t, c)
	missing := newTopic(t, c, 1) + "-missing"
	var logs bytes.Buffer
	mem, err := memory.New(memory.WithServer(memory.NewServer(memory.WithSyncDelivery())))
	if err != nil {
		t.Fatal(err)
	}
	in := broker.New(mem, broker.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	defer in.Close(context.Background())
	if err := in.Subscribe("orders", func(ctx context.Context, m *broker.Message) error {
		return kb.Publish(ctx, &broker.Message{Destination: missing, Body: m.Body})
	}, broker.MaxAttempts(2), broker.RetryBackoff(broker.ConstantBackoff(time.Millisecond)), broker.DeadLetter("orders-dead")); err != nil {
		t.Fatal(err)
	}
	start(t, in)
	start(t, kb)
	if err := in.Publish(context.Background(), &broker.Message{Destination: "orders", Body: []byte(`{"id":"1"}`)}); err != nil {
		t.Fatal(err)
	}
	text := logs.String()
	for _, msg := range []string{"will retry", "message dead-lettered"} {
		var line string
		for l := range strings.Lines(text) {
			if strings.Contains(l, msg) {
				line = l
			}
		}
		if !strings.Contains(line, missing) || !strings.Contains(line, "WithAutoCreateTopics") {
			t.Errorf("log line %q does not name the missing topic and the remedy; logs:\n%s", msg, text)
		}
	}
}
