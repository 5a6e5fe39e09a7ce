package main

import (
	"context"
	"fmt"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wmkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	kafka "github.com/segmentio/kafka-go"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/kafkabroker"
)

// rawKafka is kafka-go alone: a Writer configured as kafkabroker configures
// its own by default (every broker acknowledging, no linger), and a
// consumer-group Reader looping over FetchMessage and CommitMessages with
// the group timings kafkatest gives tracebus. commit is the Reader's
// CommitInterval: 0 commits each message before the next is fetched.
func rawKafka(commit time.Duration) wiring {
	return func(ctx context.Context, e *env, topic string, handle func([]byte) error) (func(context.Context) error, func(), error) {
		w := &kafka.Writer{
			Addr:         kafka.TCP(e.kafka.Addrs()...),
			Balancer:     kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll,
			BatchTimeout: time.Nanosecond,
			// The topic exists: this only makes the writer ask the cluster
			// about a topic its shared metadata cache does not know yet.
			AllowAutoTopicCreation: true,
		}
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:           e.kafka.Addrs(),
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
		loopCtx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				m, err := r.FetchMessage(loopCtx)
				if err != nil {
					return
				}
				if handle(m.Value) != nil {
					continue // not committed; a later commit covers it, as in a loop a user writes
				}
				if err := r.CommitMessages(loopCtx, m); err != nil {
					return
				}
			}
		}()
		stop := func() {
			cancel()
			<-done
			_ = r.Close()
			_ = w.Close()
		}
		publish := func(ctx context.Context) error {
			return w.WriteMessages(ctx, kafka.Message{Topic: topic, Value: payload})
		}
		return publish, stop, nil
	}
}

// tracebusKafka is a tracebus broker over kafkabroker with its defaults and
// kafkatest's group timings, with the telemetry middleware when traced.
func tracebusKafka(commit time.Duration, traced bool) wiring {
	return func(ctx context.Context, e *env, topic string, handle func([]byte) error) (func(context.Context) error, func(), error) {
		opts := append(e.kafka.TransportOptions(), kafkabroker.WithReaderConfig(func(rc *kafka.ReaderConfig) { rc.CommitInterval = commit }))
		tr, err := kafkabroker.New(opts...)
		if err != nil {
			return nil, nil, err
		}
		return tracebusWiring(ctx, tr, traced, topic, handle, broker.Group("g-"+topic), kafkabroker.StartOffset(kafka.FirstOffset))
	}
}

// watermillKafka is watermill-kafka with its default Sarama configurations
// (a SyncProducer; a consumer group), reading from the oldest offset, with
// group timings like kafkatest's. With commit 0, Sarama's auto-commit is
// off and watermill commits after each message; otherwise Sarama commits
// every commit interval (its default is one second).
func watermillKafka(commit time.Duration) wiring {
	return func(ctx context.Context, e *env, topic string, handle func([]byte) error) (func(context.Context) error, func(), error) {
		logger := watermill.NopLogger{}
		pub, err := wmkafka.NewPublisher(wmkafka.PublisherConfig{Brokers: e.kafka.Addrs(), Marshaler: wmkafka.DefaultMarshaler{}}, logger)
		if err != nil {
			return nil, nil, fmt.Errorf("watermill publisher: %w", err)
		}
		sc := wmkafka.DefaultSaramaSubscriberConfig()
		sc.Consumer.Offsets.Initial = sarama.OffsetOldest
		sc.Consumer.Group.Heartbeat.Interval = 100 * time.Millisecond
		sc.Consumer.Group.Session.Timeout = 6 * time.Second
		sc.Consumer.Group.Rebalance.Timeout = 5 * time.Second
		sc.Consumer.Group.Rebalance.Retry.Backoff = 100 * time.Millisecond
		if commit > 0 {
			sc.Consumer.Offsets.AutoCommit.Interval = commit
		} else {
			sc.Consumer.Offsets.AutoCommit.Enable = false
		}
		sub, err := wmkafka.NewSubscriber(wmkafka.SubscriberConfig{
			Brokers:               e.kafka.Addrs(),
			Unmarshaler:           wmkafka.DefaultMarshaler{},
			OverwriteSaramaConfig: sc,
			ConsumerGroup:         "g-" + topic,
		}, logger)
		if err != nil {
			_ = pub.Close()
			return nil, nil, fmt.Errorf("watermill subscriber: %w", err)
		}
		return watermillWiring(ctx, pub, sub, topic, handle)
	}
}
