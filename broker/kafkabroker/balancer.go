package kafkabroker

import (
	kafka "github.com/segmentio/kafka-go"
)

// explicitPartition travels in kafka.Message.WriterData to the balancer.
// kafka-go's Writer ignores kafka.Message.Partition and asks its Balancer
// for every message, and WriterData is the one field it hands to the
// balancer untouched that we own.
type explicitPartition int

// partitionBalancer honours Message.Partition and otherwise defers to the
// configured balancer, or by default to murmur2 for keyed messages (the
// partition the Java client picks) and round-robin for keyless ones.
type partitionBalancer struct {
	user   kafka.Balancer
	keyed  kafka.Murmur2Balancer
	spread *kafka.RoundRobin
}

func newPartitionBalancer(user kafka.Balancer) *partitionBalancer {
	return &partitionBalancer{user: user, spread: &kafka.RoundRobin{}}
}

// Balance implements kafka.Balancer.
func (b *partitionBalancer) Balance(msg kafka.Message, partitions ...int) int {
	if p, ok := msg.WriterData.(explicitPartition); ok {
		// Publish checked the partition against the topic's metadata; the
		// broker rejects it if the topic shrank since, which it cannot.
		return int(p)
	}
	if b.user != nil {
		return b.user.Balance(msg, partitions...)
	}
	if msg.Key != nil {
		return b.keyed.Balance(msg, partitions...)
	}
	return b.spread.Balance(msg, partitions...)
}
