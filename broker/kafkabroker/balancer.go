package kafkabroker

import (
	kafka "github.com/segmentio/kafka-go"
)

// writeSlot travels with a message in kafka.Message.WriterData, the one
// field kafka-go hands untouched to the balancer and to the Writer's
// Completion callback that we own. kafka-go's Writer ignores
// kafka.Message.Partition and asks its Balancer for every message, so an
// explicit partition goes to the balancer here; the balancer notes its
// choice, and Completion the offset the broker assigned, so that Publish
// can report both (driver.Delivery.Stored).
type writeSlot struct {
	explicit  bool
	partition int32
	offset    int64
	stored    bool
}

// recordStored is the Writer's Completion: it notes where each message of
// a batch the broker accepted was stored. It runs before WriteMessages
// returns for that batch.
func recordStored(msgs []kafka.Message, err error) {
	if err != nil {
		return
	}
	for i := range msgs {
		if s, ok := msgs[i].WriterData.(*writeSlot); ok {
			s.partition, s.offset, s.stored = int32(msgs[i].Partition), msgs[i].Offset, true
		}
	}
}

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
	slot, _ := msg.WriterData.(*writeSlot)
	if slot != nil && slot.explicit {
		// Publish checked the partition against the topic's metadata; the
		// broker rejects it if the topic shrank since, which it cannot.
		return int(slot.partition)
	}
	var p int
	switch {
	case b.user != nil:
		p = b.user.Balance(msg, partitions...)
	case msg.Key != nil:
		p = b.keyed.Balance(msg, partitions...)
	default:
		p = b.spread.Balance(msg, partitions...)
	}
	if slot != nil {
		slot.partition = int32(p)
	}
	return p
}
