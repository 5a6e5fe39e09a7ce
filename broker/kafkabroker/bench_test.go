package kafkabroker_test

import (
	"bytes"
	"context"
	"strconv"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/testutil/kafkatest"
)

// The benchmarks publish to an in-process kfake cluster through the broker
// (no middleware) and through a raw kafka-go Writer configured the way the
// transport configures its own (acks from all replicas, no linger), so the
// difference is what the broker and the transport add. kafka-go's default
// Writer lingers a second per batch; "kafka-go-default" shows that cost.

var benchBody = bytes.Repeat([]byte("x"), 256)

func benchCluster(b *testing.B) (*kafkatest.Cluster, string) {
	c, err := kafkatest.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	topic := "bench"
	if err := c.CreateTopicContext(context.Background(), topic, 3); err != nil {
		b.Fatal(err)
	}
	return c, topic
}

func benchBroker(b *testing.B, c *kafkatest.Cluster) *broker.Broker {
	br := broker.New(mustTransport(b, c))
	b.Cleanup(func() { _ = br.Close(context.Background()) })
	return br
}

func rawWriter(b *testing.B, c *kafkatest.Cluster, lingerDefault bool) *kafka.Writer {
	w := &kafka.Writer{
		Addr:                   kafka.TCP(c.Addrs()...),
		Balancer:               kafka.Murmur2Balancer{},
		RequiredAcks:           kafka.RequireAll,
		BatchTimeout:           time.Nanosecond,
		AllowAutoTopicCreation: true,
	}
	if lingerDefault {
		w.BatchTimeout = 0
	}
	b.Cleanup(func() { _ = w.Close() })
	return w
}

func benchHeaders() broker.Headers {
	var h broker.Headers
	h.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	h.Set("baggage", "tenant=acme")
	return h
}

func BenchmarkPublish(b *testing.B) {
	c, topic := benchCluster(b)
	ctx := context.Background()
	headers := benchHeaders()
	kheaders := []kafka.Header{{Key: "traceparent", Value: []byte(headers[0].Value)}, {Key: "baggage", Value: []byte(headers[1].Value)}}
	key := []byte("customer-42")

	b.Run("broker", func(b *testing.B) {
		br := benchBroker(b, c)
		b.ReportAllocs()
		for b.Loop() {
			if err := br.Publish(ctx, &broker.Message{Destination: topic, Key: key, Body: benchBody, Headers: headers}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("broker-cancellable-ctx", func(b *testing.B) {
		// A cancellable ctx makes the transport copy the message bytes.
		br := benchBroker(b, c)
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		b.ReportAllocs()
		for b.Loop() {
			if err := br.Publish(cctx, &broker.Message{Destination: topic, Key: key, Body: benchBody, Headers: headers}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("kafka-go", func(b *testing.B) {
		w := rawWriter(b, c, false)
		b.ReportAllocs()
		for b.Loop() {
			if err := w.WriteMessages(ctx, kafka.Message{Topic: topic, Key: key, Value: benchBody, Headers: kheaders}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("kafka-go-default", func(b *testing.B) {
		w := rawWriter(b, c, true)
		b.ReportAllocs()
		for b.Loop() {
			if err := w.WriteMessages(ctx, kafka.Message{Topic: topic, Key: key, Value: benchBody, Headers: kheaders}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkPublishBatch(b *testing.B) {
	c, topic := benchCluster(b)
	ctx := context.Background()
	const n = 100
	headers := benchHeaders()

	b.Run("broker", func(b *testing.B) {
		br := benchBroker(b, c)
		msgs := make([]*broker.Message, n)
		b.ReportAllocs()
		for b.Loop() {
			for i := range msgs {
				msgs[i] = &broker.Message{Destination: topic, Body: benchBody, Headers: headers}
			}
			if err := br.PublishBatch(ctx, msgs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("kafka-go", func(b *testing.B) {
		w := rawWriter(b, c, false)
		w.Balancer = &kafka.RoundRobin{}
		kheaders := []kafka.Header{{Key: "traceparent", Value: []byte(headers[0].Value)}, {Key: "baggage", Value: []byte(headers[1].Value)}}
		msgs := make([]kafka.Message, n)
		b.ReportAllocs()
		for b.Loop() {
			for i := range msgs {
				msgs[i] = kafka.Message{Topic: topic, Value: benchBody, Headers: kheaders}
			}
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkConsume consumes b.N messages, committing each one before the
// next, through a broker group subscription and through a kafka-go group
// Reader with FetchMessage and CommitMessages (synchronous commits, the
// same guarantee). The group join is inside the timing for both.
func BenchmarkConsume(b *testing.B) {
	c, _ := benchCluster(b)
	ctx := context.Background()
	fill := func(b *testing.B, topic string) {
		b.Helper()
		if err := c.CreateTopicContext(ctx, topic, 1); err != nil {
			b.Fatal(err)
		}
		w := rawWriter(b, c, false)
		msgs := make([]kafka.Message, 0, 500)
		for i := range b.N {
			msgs = append(msgs, kafka.Message{Topic: topic, Value: benchBody})
			if len(msgs) == cap(msgs) || i == b.N-1 {
				if err := w.WriteMessages(ctx, msgs...); err != nil {
					b.Fatal(err)
				}
				msgs = msgs[:0]
			}
		}
	}

	b.Run("broker", func(b *testing.B) {
		topic := "consume-broker-" + strconv.Itoa(b.N)
		fill(b, topic)
		br := benchBroker(b, c)
		done := make(chan struct{})
		n := 0
		if err := br.Subscribe(topic, func(context.Context, *broker.Message) error {
			if n++; n == b.N {
				close(done)
			}
			return nil
		}, broker.Group("bench")); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		if err := br.Start(ctx); err != nil {
			b.Fatal(err)
		}
		<-done
		b.StopTimer()
	})
	b.Run("kafka-go", func(b *testing.B) {
		topic := "consume-raw-" + strconv.Itoa(b.N)
		fill(b, topic)
		b.ReportAllocs()
		b.ResetTimer()
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: c.Addrs(), Topic: topic, GroupID: "bench",
			HeartbeatInterval: 100 * time.Millisecond, SessionTimeout: 6 * time.Second,
			JoinGroupBackoff: 100 * time.Millisecond, MaxWait: 100 * time.Millisecond,
		})
		defer r.Close()
		for range b.N {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if err := r.CommitMessages(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
	})
}
