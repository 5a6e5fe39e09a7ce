package testutil_test

import (
	"testing"

	"github.com/tracebus/tracebus/testutil/conformance"
)

func TestMemoryTelemetry(t *testing.T) {
	conformance.TestTelemetry(t, memorySuite(t))
}
