package natsbroker_test

import (
	"testing"

	"github.com/tracebus/tracebus/testutil"
)

// TestLoadJetStream runs the load table (testutil.TestLoad) on JetStream
// with a file store: 20,000 messages, 1,000,000 with TRACEBUS_HEAVY=1.
func TestLoadJetStream(t *testing.T) {
	testutil.TestLoad(t, suite(t, true), testutil.Scale(20_000, 1_000_000))
}
