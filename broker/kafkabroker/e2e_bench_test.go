package kafkabroker_test

import (
	"context"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/propagation"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/internal/e2ebench"
	"github.com/tracebus/tracebus/testutil/kafkatest"
)

// BenchmarkEndToEnd measures a 1 KiB message's way from publish to a
// handler that has finished with it and committed its offset, on an
// in-process kfake cluster, for the variants of e2ebench in the same run:
// raw kafka-go (a Writer configured as the transport configures its own,
// and a consumer-group Reader: FetchMessage, then CommitMessages), tracebus
// untraced, traced AlwaysOn, traced 1 %, and a hand-written instrumentation
// of raw kafka-go. Messages are published in batches of e2eBatch
// (WriteMessages; PublishBatch). Two commit modes:
//
//   - sync: every offset committed before the next message is handled
//     (kafka-go's and tracebus's default);
//
//   - interval: offsets committed every second (ReaderConfig.CommitInterval;
//     set through kafkabroker.WithReaderConfig).
//
//     go test -run '^$' -bench EndToEnd -benchmem -count 5 ./broker/kafkabroker
func BenchmarkEndToEnd(b *testing.B) {
	c, err := kafkatest.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	for _, commit := range []time.Duration{0, time.Second} {
		mode := "sync"
		if commit > 0 {
			mode = "interval"
		}
		for _, v := range e2ebench.Variants {
			b.Run(mode+"/"+v, func(b *testing.B) { benchE2E(b, c, commit, mode+"-"+v, v) })
		}
	}
}

const (
	e2eWindow = 256
	e2eBatch  = 64
)

func benchE2E(b *testing.B, c *kafkatest.Cluster, commit time.Duration, topic, variant string) {
	ctx := context.Background()
	if err := c.CreateTopicContext(ctx, topic, 1); err != nil {
		b.Fatal(err)
	}
	w := e2ebench.NewWindow(e2eWindow)
	var publish, flush func() error
	switch variant {
	case e2ebench.Raw, e2ebench.Hand:
		var h *e2ebench.Instrumentation
		if variant == e2ebench.Hand {
			h = e2ebench.NewInstrumentation(b, "kafka", topic)
		}
		publish, flush = rawKafkaE2E(b, c, commit, topic, h, w)
	default:
		opts := append(c.TransportOptions(), kafkabroker.WithReaderConfig(func(rc *kafka.ReaderConfig) { rc.CommitInterval = commit }))
		br := broker.New(mustTransport(b, c, opts...), e2ebench.BrokerOptions(b, variant)...)
		b.Cleanup(func() { _ = br.Close(ctx) })
		if err := br.Subscribe(topic, func(context.Context, *broker.Message) error {
			w.Done()
			return nil
		}, broker.Group("g-"+topic), kafkabroker.StartOffset(kafka.FirstOffset)); err != nil {
			b.Fatal(err)
		}
		if err := br.Start(ctx); err != nil {
			b.Fatal(err)
		}
		batch := e2ebench.NewBatch(e2eBatch, func(msgs []*broker.Message) error { return br.PublishBatch(ctx, msgs) })
		publish = func() error { return batch.Add(&broker.Message{Destination: topic, Body: e2ebench.Body}) }
		flush = batch.Flush
	}
	e2ebench.Run(b, w, publish, flush)
}

// rawKafkaE2E wires the raw kafka-go variant, instrumented by h when it is
// not nil, and returns its publish and flush functions.
func rawKafkaE2E(b *testing.B, c *kafkatest.Cluster, commit time.Duration, topic string, h *e2ebench.Instrumentation, w e2ebench.Window) (publish, flush func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	r := rawReader(c, topic, commit)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				return
			}
			if h != nil {
				h.Consume(kafkaCarrier{&m.Headers}, len(m.Value))
			}
			if err := r.CommitMessages(ctx, m); err != nil {
				return
			}
			w.Done()
		}
	}()
	b.Cleanup(func() {
		cancel()
		<-done
		_ = r.Close()
	})

	wr := rawWriter(b, c, false)
	batch := e2ebench.NewBatch(e2eBatch, func(msgs []kafka.Message) error {
		send := func() error { return wr.WriteMessages(context.Background(), msgs...) }
		if h == nil {
			return send()
		}
		carriers := make([]propagation.TextMapCarrier, len(msgs))
		for i := range msgs {
			carriers[i] = kafkaCarrier{&msgs[i].Headers}
		}
		return h.Publish(context.Background(), carriers, send)
	})
	return func() error { return batch.Add(kafka.Message{Topic: topic, Value: e2ebench.Body}) }, batch.Flush
}

// rawReader returns a consumer-group Reader of topic in group "g-"+topic,
// with the timings kafkatest gives the transport.
func rawReader(c *kafkatest.Cluster, topic string, commit time.Duration) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:           c.Addrs(),
		GroupID:           "g-" + topic,
		Topic:             topic,
		StartOffset:       kafka.FirstOffset,
		CommitInterval:    commit,
		MaxWait:           100 * time.Millisecond,
		HeartbeatInterval: 100 * time.Millisecond,
		SessionTimeout:    6 * time.Second,
		RebalanceTimeout:  5 * time.Second,
		JoinGroupBackoff:  100 * time.Millisecond,
		ReadBackoffMin:    10 * time.Millisecond,
		ReadBackoffMax:    200 * time.Millisecond,
	})
}

// kafkaCarrier is the propagation carrier a user writes for kafka-go's
// record headers.
type kafkaCarrier struct{ h *[]kafka.Header }

func (c kafkaCarrier) Get(key string) string {
	for _, h := range *c.h {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func (c kafkaCarrier) Set(key, value string) {
	for i, h := range *c.h {
		if h.Key == key {
			(*c.h)[i].Value = []byte(value)
			return
		}
	}
	*c.h = append(*c.h, kafka.Header{Key: key, Value: []byte(value)})
}

func (c kafkaCarrier) Keys() []string {
	keys := make([]string, len(*c.h))
	for i, h := range *c.h {
		keys[i] = h.Key
	}
	return keys
}
