package kafkabroker_test

import (
	"testing"

	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/kafkatest"
)

// TestHostileHeaders runs the hostile trace header table
// (testutil.TestHostileHeaders) on Kafka, which keeps header order and
// duplicates; hostile baggage is covered by TestTransportBaggage.
func TestHostileHeaders(t *testing.T) {
	testutil.TestHostileHeaders(t, suite(kafkatest.New(t)))
}
