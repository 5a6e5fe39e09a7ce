// Package testutil is the test kit of tracebus: a Recorder that captures
// spans and metrics with the real OpenTelemetry SDK, helpers that find spans
// and print span trees, and the suites every transport runs —
// TestTransport (conformance), TestTelemetry and TestBaggage — switched by
// the Features a transport declares.
//
// A transport package tests itself with one value:
//
//	s := testutil.TransportSuite{New: newTransport, Features: testutil.Features{Groups: true}}
//	testutil.TestTransport(t, s)
//
// Memory returns a memory transport for a test in one line. Embedded
// servers live in the subpackages natstest and kafkatest, which go run
// ./example also uses to run without installed servers.
package testutil
