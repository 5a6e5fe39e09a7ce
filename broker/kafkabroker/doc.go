// Package kafkabroker is the Kafka transport of tracebus, built on
// github.com/segmentio/kafka-go.
//
// One Transport publishes through a single kafka-go Writer and consumes
// with one kafka-go ConsumerGroup per group subscription (for one topic, or
// every topic a Pattern matches) and with kafka-go partition readers
// without a group:
//
//	tr, err := kafkabroker.New(kafkabroker.WithSeedBrokers("kafka-1:9092", "kafka-2:9092"))
//	if err != nil { ... }
//	b := broker.New(tr, broker.WithMiddleware(middleware.NewTelemetry()))
//	b.Subscribe("orders", handle, broker.Group("billing"))
//	err = b.Run(ctx)
//
// # Publishing
//
// A message goes to the topic in Message.Destination, to the partition in
// Message.Partition when it is set (kafka-go's Writer ignores
// kafka.Message.Partition; the transport's balancer honours ours), and
// otherwise to the partition the Writer's Balancer chooses: by default the
// one the Java client picks for the key (murmur2), round-robin without a
// key.
// Headers keep order, case and duplicates, and their values go out as the
// same bytes. A nil Body is a null value: with a key, a tombstone.
//
// PublishBatch writes all its messages with one WriteMessages call; when
// the brokers take some and refuse others, the error is a broker.BatchError
// that says which ones failed. Publish returns once the brokers stored the
// messages (RequiredAcks defaults to all in-sync replicas), and it does
// not linger: kafka-go's Writer waits up to a second to fill a batch by
// default, this transport sends each call's messages at once unless a
// BatchTimeout asks for lingering. Publishes to one topic that arrive while
// a write to it is on the wire go out together in the next write, so
// concurrent publishers share produce requests without waiting for a timer.
// Producer settings are kafka-go's own, reached through WithWriterConfig;
// fetch settings through WithReaderConfig, group membership through
// WithConsumerGroupConfig.
//
// # Consuming
//
// A subscription with broker.Group joins that consumer group; a delivery is
// committed when it is acknowledged or terminated (after the broker
// dead-lettered or dropped it), never before. Errors are retried in place:
// on a Nak the same messages are delivered again after the backoff, with
// DeliveryCount one higher, and the partition does not move on meanwhile.
// So messages of a partition are handled in offset order and offsets are
// committed in order. Up to broker.Concurrency deliveries run at once, for
// different partitions.
//
// When the group rebalances, a member finishes and commits the deliveries
// it has in flight before it gives its partitions up (bounded by the
// group's RebalanceTimeout), and drops what it fetched but did not deliver, so
// the next owner starts exactly after the last processed message. Close
// does the same before leaving the group. A message is processed twice only
// when a member dies, overruns the rebalance timeout, or a commit fails.
//
// A subscription without a group reads every partition of its topic itself
// and commits nothing, so every such subscription gets every message; it
// starts with the messages published after Subscribe returned (see
// StartOffset). Partitions restricts it to some partitions, from an offset
// StartOffset gives (FastStream's TopicPartition): Ack then stores nothing,
// and a restart begins at that offset again.
//
// Pattern makes the destination a regular expression over topic names
// (FastStream's pattern=): a group consumes every matching topic, topics
// created later included (found within about WithMetadataMaxAge), and
// without a group every partition of every matching topic is read. Each
// message's Destination is its topic; telemetry names the spans after the
// pattern and records it as messaging.destination.template.
//
// Batch subscriptions collect up to the size given with broker.Batch,
// waiting at most its wait after the first, and acknowledge them together by
// committing the highest offset of each partition in the batch.
//
// Each consumed message carries its topic, key, headers and the delivery
// facts Partition, Offset, Timestamp, Group, Subscription and
// DeliveryCount. Info reports the first seed broker as server address and
// port, the client id, and "commit" as the settle operation.
//
// # Topics
//
// The transport asks the brokers to create topics only when told to:
// WithAutoCreateTopics creates missing topics through the CreateTopics API,
// whatever the brokers' auto.create.topics.enable. Without it no request of
// the transport allows automatic creation, so a topic must exist before it
// is used. A publish to a topic that kafka-go's metadata cache does not
// know asks the cluster once, with a request that cannot create it: a
// topic created a moment ago is then published to at once, and a missing
// one fails the publish at once with an error wrapping ErrUnknownTopic
// that names the topic and the remedy (create it, or WithAutoCreateTopics).
// A handler whose onward publish fails so is retried with backoff, as for
// any error, so a topic created meanwhile is found; the broker's log lines
// for the retry and the dead letter carry that error. A subscription
// without a group to a missing topic fails with ErrUnknownTopic; a group
// subscription waits for the topic. Partition counts, which Publish needs for
// Message.Partition, are cached per transport for WithMetadataMaxAge (6s by
// default).
//
// # Limits
//
// These come from Kafka or kafka-go and are not hidden:
//   - kafka-go reads a zero-length key or value as nil: an empty body
//     arrives as a nil Body, indistinguishable from a tombstone.
//   - Kafka records have no id or reply field: Message.ID travels in the
//     x-tracebus-message-id header (driver.HeaderMessageID) and
//     Message.ReplyTo in the x-tracebus-reply-to header
//     (driver.HeaderReplyTo).
//   - DeliveryCount counts the deliveries made by one member. A message
//     whose partition moves to another member during its retries starts
//     again at 1 there.
//   - A subscription without a group reads the partitions its topic had
//     when it started.
//   - Destinations are topic names, or regular expressions with Pattern:
//     there are no subject wildcards.
//
// # Request/reply
//
// broker.Request needs a reply topic per broker instance (WithReplyTopic;
// WithAutoCreateTopics creates it). It is read without a consumer group
// from its end, so no group join delays the first reply, and replies are
// matched to requests by the broker's own request id (the
// x-tracebus-reply-id header when the caller chose the correlation id,
// else x-tracebus-correlation-id). Kafka
// cannot tell that nobody consumes a topic: a request nobody answers times
// out. See Transport.OpenInbox for the latency and ordering.
//
// # Testing
//
// Package github.com/tracebus/tracebus/testutil/kafkatest starts an
// in-process Kafka (franz-go's kfake) and provides options that make group
// joins and rebalances take milliseconds.
package kafkabroker
