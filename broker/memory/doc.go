// Package memory is an in-process driver.Transport with the semantics of a
// real broker: published messages are copied (no shared slices, no context
// crosses over), headers and keys are kept, every subscription receives
// every message, members of a group share the messages (each to one
// member), batches form by size or wait, and failed messages are
// redelivered after the backoff the broker asks for.
//
// Destinations are matched like NATS subjects: tokens separated by ".", "*"
// matches one token and ">" matches one or more trailing tokens. Messages
// are not stored: a message published before a subscription exists is not
// delivered to it.
//
// It is meant for tests and demos: the full tracebus telemetry suite runs on
// it as it does on NATS and Kafka. For tests, a Server can also deliver
// synchronously (WithSyncDelivery: Publish returns once every handler it
// caused has finished) and record every message published
// (WithRecording); testutil.Harness builds on both.
//
//	tr, err := memory.New()
//	if err != nil { ... }
//	b := broker.New(tr)
package memory
