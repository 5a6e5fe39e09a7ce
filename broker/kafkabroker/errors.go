package kafkabroker

import "errors"

// Errors of the Kafka transport. Match them with errors.Is; Kafka protocol
// errors come through as kafka-go's kafka.Error values and match those.
var (
	// ErrUnknownPartition: Message.Partition names a partition the topic
	// does not have.
	ErrUnknownPartition = errors.New("kafkabroker: unknown partition")
	// ErrUnknownTopic: a subscription without a group names a topic that
	// does not exist (group subscriptions wait for it instead).
	ErrUnknownTopic = errors.New("kafkabroker: unknown topic")
)
