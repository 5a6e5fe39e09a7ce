package kafkabroker_test

import (
	"testing"

	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/testutil/conformance"
	"github.com/tracebus/tracebus/testutil/kafkatest"
)

// TestLoad runs the load table (conformance.TestLoad) on Kafka (kfake):
// 20,000 messages, 1,000,000 with TRACEBUS_HEAVY=1.
func TestLoad(t *testing.T) {
	conformance.TestLoad(t, suite(kafkatest.New(t)), testkit.Scale(20_000, 1_000_000))
}
