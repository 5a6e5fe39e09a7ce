package testutil_test

import (
	"testing"

	"github.com/tracebus/tracebus/testutil"
)

func TestMemoryBaggage(t *testing.T) {
	testutil.TestBaggage(t, memorySuite(t))
}
