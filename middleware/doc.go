// Package middleware provides Telemetry, the broker middleware that gives
// every publish and consume of a tracebus broker OpenTelemetry spans and
// metrics following the messaging semantic conventions, and carries trace
// context and baggage through message headers.
//
// Two lines set it up; the global TracerProvider, MeterProvider and
// propagator are used unless options say otherwise:
//
//	tel := middleware.NewTelemetry()
//	b := broker.New(transport, broker.WithMiddleware(tel))
//
// A handler that publishes with the ctx it was given continues the trace:
//
//	send orders (producer)
//	└─ process orders (consumer)
//	   └─ send invoices (producer)
//	      └─ process invoices (consumer)
//
// Batch publishes get a "create" span per message and a "send" span linking
// to them; batch consumes get one "process" span linking to every message's
// creation context. See Telemetry for the exact span shapes and the
// attributes and metrics recorded.
package middleware
