package testutil_test

import (
	"testing"

	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/memory"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/conformance"
)

// memorySuite describes the memory transport; every test gets a server of
// its own.
func memorySuite(t *testing.T) conformance.Suite {
	srv := memory.NewServer()
	return conformance.Suite{
		New: func(t *testing.T) driver.Transport { return testutil.Memory(t, memory.WithServer(srv)) },
		Features: conformance.Features{
			Groups: true, Batch: true, Ordered: true, Keys: true,
			Wildcards: true, MessageID: true, Concurrent: true,
		},
	}
}

func TestMemoryConformance(t *testing.T) {
	conformance.TestTransport(t, memorySuite(t))
}

func TestMemoryPull(t *testing.T) {
	conformance.TestPull(t, memorySuite(t))
}

func TestMemoryHostileHeaders(t *testing.T) {
	conformance.TestHostileHeaders(t, memorySuite(t))
}

func TestMemoryLoad(t *testing.T) {
	conformance.TestLoad(t, memorySuite(t), testkit.Scale(20_000, 1_000_000))
}

func TestMemoryTyped(t *testing.T) {
	conformance.TestTyped(t, memorySuite(t))
}

func TestMemoryRequestReply(t *testing.T) {
	s := memorySuite(t)
	s.Features.NoResponders = true
	conformance.TestRequestReply(t, s)
}
