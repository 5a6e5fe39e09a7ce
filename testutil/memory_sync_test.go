package testutil_test

import (
	"testing"

	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/memory"
	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/conformance"
)

// syncSuite describes the memory transport with synchronous delivery: the
// telemetry, baggage and typed suites hold there too, so tests written with
// a synchronous Harness see what production sees.
func syncSuite() conformance.Suite {
	srv := memory.NewServer(memory.WithSyncDelivery())
	return conformance.Suite{
		New: func(t *testing.T) driver.Transport { return testutil.Memory(t, memory.WithServer(srv)) },
		Features: conformance.Features{
			Groups: true, Batch: true, Ordered: true, Keys: true,
			Wildcards: true, MessageID: true, Synchronous: true,
		},
	}
}

func TestMemorySyncTelemetry(t *testing.T) { conformance.TestTelemetry(t, syncSuite()) }
func TestMemorySyncBaggage(t *testing.T)   { conformance.TestBaggage(t, syncSuite()) }
func TestMemorySyncTyped(t *testing.T)     { conformance.TestTyped(t, syncSuite()) }
