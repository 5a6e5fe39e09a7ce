package testutil_test

import (
	"testing"

	"github.com/tracebus/tracebus/testutil"
)

func TestMemoryTelemetry(t *testing.T) {
	testutil.TestTelemetry(t, memorySuite(t))
}
