// Package baggage gives message handlers a mutable view of W3C baggage that
// travels with messages from hop to hop, in the spirit of FastStream's
// Baggage.
//
// In a handler, baggage.FromContext(ctx) returns the view of the baggage the
// message arrived with (merged in delivery order for a batch, with the
// per-message list in Batch). Edits made with Set, Remove and Clear are
// carried by every publish the handler makes with its ctx:
//
//	func handle(ctx context.Context, msg *broker.Message) error {
//		bg := baggage.FromContext(ctx)
//		tenant := bg.Get("tenant")
//		_ = bg.Set("step", "billing")
//		return b.Publish(ctx, &broker.Message{Destination: "invoices." + tenant, Body: msg.Body})
//	}
//
// The same members are in the OpenTelemetry baggage of the handler's ctx
// (go.opentelemetry.io/otel/baggage.FromContext), so OTel-native libraries
// see them. A context's values cannot change, so that OpenTelemetry baggage
// is the baggage as it arrived; ContextForPublish(ctx) returns a ctx whose
// OpenTelemetry baggage includes the view's edits, for OTel-native code that
// should see them (publishes get them without it).
//
// The telemetry middleware (package middleware) does the propagation: it
// merges the baggage of each delivery into the handler's view and calls
// ContextForPublish for every publish. Code outside handlers puts baggage on a ctx with
// ContextWith, and reads or writes message headers with FromHeaders and
// Inject.
//
// The W3C limits hold everywhere: at most MaxMembers members and MaxBytes
// bytes. Baggage that arrives over them is cut deterministically, keeping
// members in first-seen order and dropping from the end, and the cut is
// reported through otel.Handle (at most once a minute per kind of problem,
// with a count of the rest, so a misbehaving producer cannot flood the
// logs); the message is processed with what is left.
// No internal marker is ever added to the baggage. Propagator is a drop-in
// for propagation.Baggage that also makes extraction deterministic where
// otel-go is not (several baggage headers over the limits, one header over
// MaxBytes bytes).
package baggage
