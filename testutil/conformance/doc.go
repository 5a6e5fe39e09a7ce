// Package conformance holds the suites every tracebus transport runs, the
// way testing/fstest.TestFS checks a file system: TestTransport (delivery,
// groups, batches, retries, dead letters, shutdown), TestTyped (the typed
// layer over the transport), TestTelemetry (spans, links and metrics exactly
// as the semantic conventions name them), TestBaggage, TestRequestReply,
// TestHostileHeaders and TestLoad. A transport declares what it promises in
// Features, and the suites test exactly that and skip the rest:
//
//	func TestConformance(t *testing.T) {
//		s := conformance.Suite{New: newTransport, Features: conformance.Features{Groups: true, Batch: true}}
//		conformance.TestTransport(t, s)
//		conformance.TestTelemetry(t, s)
//	}
//
// Service authors test their services with package testutil instead.
package conformance
