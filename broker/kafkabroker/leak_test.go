package kafkabroker_test

import (
	"context"
	"testing"

	"github.com/segmentio/kafka-go"
	"go.uber.org/goleak"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/testutil/kafkatest"
)

// Closing the broker releases every goroutine of the transport: writer,
// group members, partition readers, committers and connection pools.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	c := kafkatest.New(t)
	topic := newTopic(t, c, 2)
	// The cluster's admin client is done: closed, its metadata refresh
	// cannot open a connection (and with it a goroutine of the in-process
	// cluster) while the transport's goroutines are checked.
	c.Client().Transport.(*kafka.Transport).CloseIdleConnections()
	opts := goleak.IgnoreCurrent()

	tr, err := kafkabroker.New(c.TransportOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(tr)
	got := make(chan string, 4)
	for _, opt := range []broker.SubscribeOption{broker.Group("leak"), broker.Concurrency(2)} {
		if err := b.Subscribe(topic, func(_ context.Context, m *broker.Message) error {
			got <- string(m.Body)
			return nil
		}, opt); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.SubscribeBatch(topic, func(_ context.Context, msgs []*broker.Message) error {
		for _, m := range msgs {
			got <- string(m.Body)
		}
		return nil
	}, broker.Group("leak-batch")); err != nil {
		t.Fatal(err)
	}
	start(t, b)
	if err := b.Publish(context.Background(), &broker.Message{Destination: topic, Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		recv(t, got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Some goroutines (kfake's per-connection ones among them) end a moment
	// after the connections close; VerifyNone retries for a while.
	goleak.VerifyNone(t, opts)
}
