package natsbroker_test

import (
	"testing"

	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/testutil/conformance"
)

// TestLoadJetStream runs the load table (conformance.TestLoad) on JetStream
// with a file store: 20,000 messages, 1,000,000 with TRACEBUS_HEAVY=1.
func TestLoadJetStream(t *testing.T) {
	conformance.TestLoad(t, suite(t, true), testkit.Scale(20_000, 1_000_000))
}
