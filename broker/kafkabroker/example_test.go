package kafkabroker_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"slices"
	"strings"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/testutil/kafkatest"
)

// The examples run against an in-process Kafka from kafkatest; a service
// passes its own brokers with WithSeedBrokers instead of c.TransportOptions().

// A consumer group member that handles orders and commits each one after
// its handler returned nil.
func Example() {
	c, err := kafkatest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.CreateTopicContext(ctx, "orders", 3); err != nil {
		log.Fatal(err)
	}

	tr, err := kafkabroker.New(c.TransportOptions()...)
	if err != nil {
		log.Fatal(err)
	}
	b := broker.New(tr)
	done := make(chan struct{})
	err = b.Subscribe("orders", func(_ context.Context, msg *broker.Message) error {
		fmt.Printf("order %s: %s (group %s)\n", msg.Key, msg.Body, msg.Delivery.Group)
		close(done)
		return nil // commits the offset
	}, broker.Group("billing"))
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer b.Close(ctx)

	err = b.Publish(ctx, &broker.Message{Destination: "orders", Key: []byte("o-17"), Body: []byte("2 coffees")})
	if err != nil {
		log.Fatal(err)
	}
	<-done
	// Output: order o-17: 2 coffees (group billing)
}

// A batch subscription gets up to BatchSize messages at once and commits
// them together.
func Example_batch() {
	c, err := kafkatest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.CreateTopicContext(ctx, "clicks", 1); err != nil {
		log.Fatal(err)
	}
	tr, err := kafkabroker.New(c.TransportOptions()...)
	if err != nil {
		log.Fatal(err)
	}
	b := broker.New(tr)
	done := make(chan struct{})
	err = b.SubscribeBatch("clicks", func(_ context.Context, msgs []*broker.Message) error {
		for _, m := range msgs {
			fmt.Printf("offset %d: %s\n", m.Delivery.Offset, m.Body)
		}
		close(done)
		return nil
	}, broker.Group("analytics"), broker.Batch(3, time.Second))
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer b.Close(ctx)

	err = b.PublishBatch(ctx, []*broker.Message{
		{Destination: "clicks", Body: []byte("home")},
		{Destination: "clicks", Body: []byte("pricing")},
		{Destination: "clicks", Body: []byte("signup")},
	})
	if err != nil {
		log.Fatal(err)
	}
	<-done
	// Output:
	// offset 0: home
	// offset 1: pricing
	// offset 2: signup
}

// Message.Partition pins a message to a partition; a batch that fails in
// part reports which messages were not written.
func ExampleTransport_Publish() {
	c, err := kafkatest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.CreateTopicContext(ctx, "audit", 2); err != nil {
		log.Fatal(err)
	}
	tr, err := kafkabroker.New(c.TransportOptions()...)
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close(ctx)

	err = tr.Publish(ctx, []*broker.Message{
		{Destination: "audit", Body: []byte("to partition 1"), Partition: new(int32(1))},
		{Destination: "audit", Body: []byte("to partition 5"), Partition: new(int32(5))},
	})
	var be broker.BatchError
	if errors.As(err, &be) {
		fmt.Println("failed:", be.Failed(), errors.Is(be[1], kafkabroker.ErrUnknownPartition))
	}
	// Output: failed: [1] true
}

// Configuring a transport for a secured production cluster.
func ExampleNew() {
	mechanism, err := scram.Mechanism(scram.SHA512, "billing", "secret")
	if err != nil {
		log.Fatal(err)
	}
	tr, err := kafkabroker.New(
		kafkabroker.WithSeedBrokers("kafka-1.internal:9093", "kafka-2.internal:9093"),
		kafkabroker.WithClientID("billing"),
		kafkabroker.WithTLS(&tls.Config{MinVersion: tls.VersionTLS12}),
		kafkabroker.WithSASL(mechanism),
		// Producer settings are kafka-go's own, set on its Writer.
		kafkabroker.WithWriterConfig(func(w *kafka.Writer) {
			w.Compression = kafka.Zstd
			w.BatchBytes = 4 << 20
		}),
		// Commit acknowledged offsets once a second rather than one
		// by one: kafka-go's own setting.
		kafkabroker.WithReaderConfig(func(rc *kafka.ReaderConfig) {
			rc.CommitInterval = time.Second
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close(context.Background())
	fmt.Printf("%+v\n", tr.Info())
	// Output: {System:kafka ServerAddress:kafka-1.internal ServerPort:9093 ClientID:billing AckOperation:commit ReceiveOperation:poll TemporaryPrefix: Separator:}
}

// A subscription without a group that reads the topic from its first
// offset, like a replay tool.
func ExampleStartOffset() {
	c, err := kafkatest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.CreateTopicContext(ctx, "prices", 1); err != nil {
		log.Fatal(err)
	}
	tr, err := kafkabroker.New(c.TransportOptions()...)
	if err != nil {
		log.Fatal(err)
	}
	b := broker.New(tr)
	defer b.Close(ctx)
	// Published before anyone subscribed.
	if err := b.Publish(ctx, &broker.Message{Destination: "prices", Key: []byte("EUR"), Body: []byte("1.08")}); err != nil {
		log.Fatal(err)
	}

	done := make(chan struct{})
	err = b.Subscribe("prices", func(_ context.Context, msg *broker.Message) error {
		fmt.Printf("%s %s\n", msg.Key, msg.Body)
		close(done)
		return nil
	}, kafkabroker.StartOffset(kafka.FirstOffset))
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		log.Fatal(err)
	}
	<-done
	// Output: EUR 1.08
}

// Seed brokers from a command-line flag or an environment variable, as a
// comma-separated list; a mistake fails New with the value named.
func ExampleWithSeedBrokers() {
	tr, err := kafkabroker.New(kafkabroker.WithSeedBrokers("kafka-1.internal:9093, kafka-2.internal"))
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close(context.Background())
	fmt.Println(tr.Info().ServerAddress, tr.Info().ServerPort)

	_, err = kafkabroker.New(kafkabroker.WithSeedBrokers("kafka://kafka-1.internal:9093"))
	fmt.Println(errors.Is(err, broker.ErrInvalid))
	fmt.Println(err)
	// Output:
	// kafka-1.internal 9093
	// true
	// kafkabroker: broker address "kafka://kafka-1.internal:9093": a URL: write host:port without a scheme (TLS and SASL are the options WithTLS and WithSASL): tracebus: invalid option
}

// A publish to a topic that does not exist fails at once, saying so.
func ExampleErrUnknownTopic() {
	c, err := kafkatest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	tr, err := kafkabroker.New(c.TransportOptions()...)
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close(ctx)

	err = tr.Publish(ctx, []*broker.Message{{Destination: "no-such-topic", Body: []byte("x")}})
	fmt.Println(errors.Is(err, kafkabroker.ErrUnknownTopic))
	fmt.Println(err)
	// Output:
	// true
	// kafkabroker: publish no-such-topic: kafkabroker: unknown topic: create the topic, or let the transport create missing topics with kafkabroker.WithAutoCreateTopics ([3] Unknown Topic Or Partition: the request is for a topic or partition that does not exist on this broker)
}

// A replay of two partitions of a topic from offset 1, without a consumer
// group: nothing is committed, and a restart begins at offset 1 again.
func ExamplePartitions() {
	c, err := kafkatest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.CreateTopicContext(ctx, "ledger", 3); err != nil {
		log.Fatal(err)
	}
	tr, err := kafkabroker.New(c.TransportOptions()...)
	if err != nil {
		log.Fatal(err)
	}
	b := broker.New(tr)
	defer b.Close(ctx)
	for p := range int32(3) {
		for i := range 3 {
			body := fmt.Sprintf("entry %d of partition %d", i, p)
			if err := b.Publish(ctx, &broker.Message{Destination: "ledger", Partition: new(p), Body: []byte(body)}); err != nil {
				log.Fatal(err)
			}
		}
	}

	got := make(chan string)
	err = b.Subscribe("ledger", func(_ context.Context, msg *broker.Message) error {
		got <- string(msg.Body)
		return nil
	}, kafkabroker.Partitions(0, 2), kafkabroker.StartOffset(1))
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		log.Fatal(err)
	}
	var entries []string
	for range 4 {
		entries = append(entries, <-got)
	}
	slices.Sort(entries)
	fmt.Println(strings.Join(entries, "\n"))
	// Output:
	// entry 1 of partition 0
	// entry 1 of partition 2
	// entry 2 of partition 0
	// entry 2 of partition 2
}

// One consumer group for every topic whose name matches a regular
// expression, including topics created after the subscription started.
func ExamplePattern() {
	c, err := kafkatest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.CreateTopicContext(ctx, "audit-eu", 1); err != nil {
		log.Fatal(err)
	}
	// New topics are found within about WithMetadataMaxAge.
	tr, err := kafkabroker.New(append(c.TransportOptions(), kafkabroker.WithMetadataMaxAge(time.Second))...)
	if err != nil {
		log.Fatal(err)
	}
	b := broker.New(tr)
	defer b.Close(ctx)

	got := make(chan string)
	err = b.Subscribe(`audit-[a-z]{2}`, func(_ context.Context, msg *broker.Message) error {
		got <- msg.Destination + ": " + string(msg.Body)
		return nil
	}, kafkabroker.Pattern(), broker.Group("auditor"))
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		log.Fatal(err)
	}
	if err := b.Publish(ctx, &broker.Message{Destination: "audit-eu", Body: []byte("login")}); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-got)

	if err := c.CreateTopicContext(ctx, "audit-us", 1); err != nil {
		log.Fatal(err)
	}
	if err := b.Publish(ctx, &broker.Message{Destination: "audit-us", Body: []byte("logout")}); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-got)
	// Output:
	// audit-eu: login
	// audit-us: logout
}
