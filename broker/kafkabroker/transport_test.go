package kafkabroker_test

import (
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/testutil/conformance"
	"github.com/tracebus/tracebus/testutil/kafkatest"
)

// suitePartitions is the partition count of every topic the suites use:
// more than one, so that ordering and group sharing are tested where Kafka
// makes them hard.
const suitePartitions = 3

// suite returns the TransportSuite for a cluster. Features:
//   - Groups, Persistent, Keys, Partitions, Ordered (per key), Batch: yes.
//   - Concurrent: yes on topics with at least as many partitions as the
//     concurrency, which is how Kafka parallelises: the suite's keyless
//     messages are spread round-robin over the 3 partitions of its topics.
//   - MessageID: yes, in the driver.HeaderMessageID header.
//   - Wildcards: no.
func suite(c *kafkatest.Cluster) conformance.Suite {
	return conformance.Suite{
		New: func(t *testing.T) driver.Transport {
			// Every transport has a reply topic of its own.
			var rnd [6]byte
			_, _ = rand.Read(rnd[:])
			replies := "replies-" + hex.EncodeToString(rnd[:])
			c.CreateTopic(t, replies, 1)
			opts := append(c.TransportOptions(), kafkabroker.WithReplyTopic(replies))
			tr, err := kafkabroker.New(opts...)
			if err != nil {
				t.Fatal(err)
			}
			return tr
		},
		Prepare: func(t *testing.T, dest string) { c.CreateTopic(t, dest, suitePartitions) },
		Features: conformance.Features{
			Groups:     true,
			Batch:      true,
			Ordered:    true,
			Persistent: true,
			Keys:       true,
			Partitions: true,
			Concurrent: true,
			MessageID:  true,
		},
		Timeout: wait, // group joins: see wait
	}
}

func TestTransportConformance(t *testing.T) {
	c := kafkatest.New(t)
	conformance.TestTransport(t, suite(c))
}

func TestTransportTelemetry(t *testing.T) {
	c := kafkatest.New(t)
	conformance.TestTelemetry(t, suite(c))
}

// TestTransportPull runs the pull suite with a group (a group reader) and
// without (one partition reader per partition).
func TestTransportPull(t *testing.T) {
	c := kafkatest.New(t)
	conformance.TestPull(t, suite(c))
}

func TestTransportBaggage(t *testing.T) {
	c := kafkatest.New(t)
	conformance.TestBaggage(t, suite(c))
}

func TestTransportTyped(t *testing.T) {
	c := kafkatest.New(t)
	conformance.TestTyped(t, suite(c))
}

func TestTransportConformanceThreeBrokers(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	c := kafkatest.New(t, kafkatest.WithNumBrokers(3))
	conformance.TestTransport(t, suite(c))
}
