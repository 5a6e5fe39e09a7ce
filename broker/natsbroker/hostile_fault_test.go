package natsbroker_test

import (
	"testing"

	"github.com/tracebus/tracebus/testutil/conformance"
)

// TestHostileHeadersCore and TestHostileHeadersJetStream run the hostile
// trace header table (conformance.TestHostileHeaders) on NATS; hostile
// baggage is covered by TestBaggage*. NATS delivers header keys sorted, so
// the case-variant cases check that the rule does not depend on order.
func TestHostileHeadersCore(t *testing.T) {
	conformance.TestHostileHeaders(t, suite(t, false))
}

func TestHostileHeadersJetStream(t *testing.T) {
	conformance.TestHostileHeaders(t, suite(t, true))
}
