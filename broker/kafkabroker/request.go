package kafkabroker

import (
	"context"
	"errors"
	"fmt"

	kafka "github.com/segmentio/kafka-go"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/internal/replyid"
)

var (
	_ driver.ReplyPreparer = (*Transport)(nil)
)

// WithReplyTopic names the topic the replies to this transport's requests
// (broker.Request) arrive on. Each broker instance needs a topic of its
// own: the instance reads every partition of it without a consumer group
// and drops replies that are not for one of its requests, so two instances
// sharing a topic would each see, and drop, half of their replies as
// strangers'. Derive the name from something unique to the instance (its
// host name, pod name). Without it, Request fails with
// broker.ErrInvalid, and so does New when topic is not a valid Kafka
// topic name.
func WithReplyTopic(topic string) Option {
	return name("reply topic", topicName, topic, func(c *config) *string { return &c.replyTopic })
}

// OpenInbox implements broker.ReplyTransport: it reads the reply topic
// (WithReplyTopic) from its current end, every partition, without a
// consumer group, and routes each reply to its request by the broker's
// own id of the request, which the replier copied from it: the
// "x-tracebus-reply-id" header when the requester chose the correlation
// id, else the driver.HeaderCorrelationID header.
// On publish, Message.ReplyTo travels in the driver.HeaderReplyTo header,
// and a consumed message's ReplyTo is read from it.
//
// Limits: the inbox is opened by the first request (a metadata and an
// offset lookup, and the topic's creation with WithAutoCreateTopics), which is slower than
// the ones after it; no consumer group is joined, so no rebalance delays a
// reply. A request's latency is a produce, the replier's fetch and
// produce, and this reader's fetch: tens of milliseconds, bounded below by
// the brokers' fetch wait (ReaderConfig.MaxWait) when traffic is sparse. Replies of
// one partition are handed over in offset order; nothing orders replies to
// different requests. Kafka cannot tell that nobody consumes a request's
// topic: such a request times out.
func (t *Transport) OpenInbox(ctx context.Context, deliver driver.InboxFunc) (driver.Inbox, error) {
	if t.isClosed() {
		return nil, broker.ErrClosed
	}
	topic := t.cfg.replyTopic
	if topic == "" {
		return nil, fmt.Errorf("kafkabroker: requests need a reply topic (WithReplyTopic): %w", broker.ErrInvalid)
	}
	if t.autoCreate() {
		if err := t.createReplyTopic(ctx, topic); err != nil {
			return nil, err
		}
	}
	// The subscription keeps the ctx it is given as its deliveries' ctx.
	// The request's ctx must bound the lookups of Subscribe, but must not
	// be kept (its values, the first request's span among them): the
	// lookups get a ctx of their own that ends with it. The deliveries
	// below use no ctx (an ack of a group-less subscription commits
	// nothing), so that one ending cannot stop the inbox.
	openCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	sub, err := t.Subscribe(openCtx, driver.SubscriptionSpec{Destination: topic, Concurrency: 1},
		func(ctx context.Context, msgs []*broker.Message, ack driver.Acknowledger) {
			for _, m := range msgs {
				// The broker's own id: the replyid header when the
				// requester chose the correlation id, else the
				// correlation id, which is then the broker's.
				id, ok := m.Headers.Lookup(replyid.Header)
				if !ok {
					id = m.Headers.Get(driver.HeaderCorrelationID)
				}
				deliver(id, m, nil)
			}
			_ = ack.Ack(ctx)
		})
	if err != nil {
		return nil, fmt.Errorf("kafkabroker: open reply inbox: %w", err)
	}
	return &inbox{topic: topic, sub: sub}, nil
}

func (t *Transport) createReplyTopic(ctx context.Context, topic string) error {
	res, err := t.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: 1, ReplicationFactor: t.cfg.createReplication}},
	})
	if err != nil {
		return fmt.Errorf("kafkabroker: create reply topic %s: %w", topic, err)
	}
	if terr := res.Errors[topic]; terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
		return fmt.Errorf("kafkabroker: create reply topic %s: %w", topic, terr)
	}
	return nil
}

// inbox is a broker's reply inbox: a group-less subscription to the
// transport's reply topic.
type inbox struct {
	topic string
	sub   driver.Subscription
}

func (in *inbox) ReplyTo(string) string { return in.topic }

func (in *inbox) Close(ctx context.Context) error { return in.sub.Close(ctx) }

// PrepareReply implements driver.ReplyPreparer. A requester creates its
// reply topic when it starts, and kafka-go's writer learns about a new
// topic only at its next metadata refresh (WithMetadataMaxAge, 6s by
// default): the first reply to every new requester would wait that long.
// So before the first reply to a topic the writer does not know, the
// transport checks that the topic exists, with a request that cannot
// create it (DescribeConfigs), and then has kafka-go refresh its metadata
// for it. A reply address naming no topic is not created here, whatever
// the brokers' auto.create.topics.enable: the publish then fails with
// ErrUnknownTopic, as any publish to a missing topic does.
func (t *Transport) PrepareReply(ctx context.Context, topic string) error {
	if _, ok := t.replyTopics.Load(topic); ok || t.autoCreate() {
		return nil
	}
	if exists, err := t.lookupTopic(ctx, topic); exists && err == nil {
		t.replyTopics.Store(topic, struct{}{})
	}
	return nil
}
