package testutil_test

import (
	"testing"

	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/memory"
	"github.com/tracebus/tracebus/testutil"
)

// memorySuite describes the memory transport; every test gets a server of
// its own.
func memorySuite(t *testing.T) testutil.TransportSuite {
	srv := memory.NewServer()
	return testutil.TransportSuite{
		New: func(t *testing.T) driver.Transport { return testutil.Memory(t, memory.WithServer(srv)) },
		Features: testutil.Features{
			Groups: true, Batch: true, Ordered: true, Keys: true,
			Wildcards: true, MessageID: true, Concurrent: true,
		},
	}
}

func TestMemoryConformance(t *testing.T) {
	testutil.TestTransport(t, memorySuite(t))
}

func TestMemoryHostileHeaders(t *testing.T) {
	testutil.TestHostileHeaders(t, memorySuite(t))
}

func TestMemoryLoad(t *testing.T) {
	testutil.TestLoad(t, memorySuite(t), testutil.Scale(20_000, 1_000_000))
}

func TestMemoryTyped(t *testing.T) {
	testutil.TestTyped(t, memorySuite(t))
}

func TestMemoryRequestReply(t *testing.T) {
	s := memorySuite(t)
	s.Features.NoResponders = true
	testutil.TestRequestReply(t, s)
}
