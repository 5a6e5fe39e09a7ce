package kafkabroker

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/internal/subopt"
)

// Partitions makes the subscription read only the given partitions of its
// topic, by itself, without a consumer group (FastStream's TopicPartition,
// kafka-go's Reader with a Partition): each partition gets its own kafka-go
// partition reader, starting at StartOffset, an offset or kafka.FirstOffset
// or kafka.LastOffset (the default: the end of each partition when
// Subscribe is called). A partition given twice is read once. kafka-go's
// reader decides what an offset outside a partition means: one removed by
// retention starts at the partition's first offset, one past its end waits
// until the partition reaches it.
//
// There is no group, so nothing is committed: Ack only lets the partition
// move on to the next message, and a subscription started again (a restart
// of the process) begins at StartOffset again; keep your own position, or
// use a group, to resume. Failures are retried as for a group subscription,
// in place: after a Nak the same messages are delivered again after the
// backoff, with DeliveryCount one higher, and the partition waits
// meanwhile; after the last attempt the broker dead-letters or drops them
// and the partition moves on.
//
// Subscribe fails with broker.ErrInvalid when Partitions is combined with
// broker.Group or Pattern, or given no partition or a negative one; it
// fails with an error wrapping ErrUnknownPartition, naming the partition,
// when the topic does not have one of them (at Broker.Start, or at
// Subscribe on a started broker).
func Partitions(ps ...int) broker.SubscribeOption {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = strconv.Itoa(p)
	}
	ps = slices.Clone(ps)
	return broker.TransportOption(subopt.Option[subConfig]{
		Package: "kafkabroker", System: system,
		Name: "Partitions(" + strings.Join(names, ", ") + ")",
		Apply: func(c *subConfig) {
			if c.partitions == nil {
				c.partitions = []int{}
			}
			c.partitions = append(c.partitions, ps...)
		},
	})
}

// checkPartitions checks the Partitions of a subscription and removes
// repeated ones.
func checkPartitions(spec *driver.SubscriptionSpec, sc *subConfig) error {
	if sc.partitions == nil {
		return nil
	}
	d := spec.Destination
	switch {
	case spec.Group != "":
		return fmt.Errorf("kafkabroker: subscribe %s: Partitions reads without a consumer group, and group %q was given: %w", d, spec.Group, broker.ErrInvalid)
	case sc.isPattern:
		return fmt.Errorf("kafkabroker: subscribe %s: Partitions names partitions of one topic, not of a Pattern: %w", d, broker.ErrInvalid)
	case len(sc.partitions) == 0:
		return fmt.Errorf("kafkabroker: subscribe %s: Partitions without a partition: %w", d, broker.ErrInvalid)
	}
	for _, p := range sc.partitions {
		if p < 0 || p >= math.MaxInt32 {
			return fmt.Errorf("kafkabroker: subscribe %s: partition %d: %w", d, p, broker.ErrInvalid)
		}
	}
	slices.Sort(sc.partitions)
	sc.partitions = slices.Compact(sc.partitions)
	return nil
}
