package kafkabroker_test

import (
	"testing"

	"github.com/tracebus/tracebus/testutil/conformance"
	"github.com/tracebus/tracebus/testutil/kafkatest"
)

// TestHostileHeaders runs the hostile trace header table
// (conformance.TestHostileHeaders) on Kafka, which keeps header order and
// duplicates; hostile baggage is covered by TestTransportBaggage.
func TestHostileHeaders(t *testing.T) {
	conformance.TestHostileHeaders(t, suite(kafkatest.New(t)))
}
