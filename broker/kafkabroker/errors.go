package kafkabroker

import "errors"

// Errors of the Kafka transport. Match them with errors.Is; Kafka protocol
// errors come through as kafka-go's kafka.Error values and match those.
var (
	// ErrUnknownPartition: Message.Partition, or a subscription's
	// Partitions, names a partition the topic does not have.
	ErrUnknownPartition = errors.New("kafkabroker: unknown partition")
	// ErrUnknownTopic: a publish, or a subscription without a group, names
	// a topic that does not exist while the transport does not create
	// topics (WithAutoCreateTopics). Group subscriptions wait for the topic
	// instead.
	ErrUnknownTopic = errors.New("kafkabroker: unknown topic")
)
