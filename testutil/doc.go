// Package testutil is the test kit of a tracebus service: a Harness that
// runs the service's real wiring in a test, assertions on what it published
// and handled, and a Recorder that captures spans and metrics with the real
// OpenTelemetry SDK, with helpers that find spans and print or compare span
// trees.
//
// A service test takes a few lines: service code receives its brokers as
// parameters, the test gives it brokers from a synchronous Harness, and
// reads what was published as soon as Publish returns:
//
//	h := testutil.NewHarness(t, testutil.WithSyncDelivery())
//	in, out := h.Broker(), h.Broker()
//	if err := billing.Wire(in, out); err != nil {
//		t.Fatal(err)
//	}
//	// publish an order on in, then:
//	testutil.AssertPublishedOnce(t, h, "invoices", billing.Invoice{OrderID: "42", Amount: 10}, testutil.Key("42"))
//	h.AssertNoDeadLetters(t)
//	h.AssertSpanTree(t, `
//		send orders.eu (producer)
//		  process orders.* (consumer)
//		    send invoices (producer)`)
//
// The same test runs on NATS, JetStream or Kafka, embedded or external,
// with OnNATS or OnKafka: the harness then waits until every subscription
// had the deliveries its messages are owed instead of delivering
// synchronously. On the memory transport, a service's subscription options
// for NATS or Kafka (natsbroker.Stream, kafkabroker.StartOffset) are
// checked and ignored, and Harness.IgnoredOptions lists them.
//
// The suites a transport or middleware author runs are in package
// testutil/conformance.
//
// Memory returns a memory transport for a test in one line. Embedded
// servers live in the subpackages natstest and kafkatest, which go run
// ./example also uses to run without installed servers.
package testutil
