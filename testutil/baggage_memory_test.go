package testutil_test

import (
	"testing"

	"github.com/tracebus/tracebus/testutil/conformance"
)

func TestMemoryBaggage(t *testing.T) {
	conformance.TestBaggage(t, memorySuite(t))
}
