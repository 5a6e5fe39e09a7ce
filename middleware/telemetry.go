package middleware

import (
	"github.com/tracebus/tracebus/broker/driver"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/messagingconv"
	"go.opentelemetry.io/otel/trace"
)

// Telemetry is a driver.Middleware that traces and measures every publish
// and consume of a broker (and, with WithSettleSpans, every settlement)
// following the OpenTelemetry messaging semantic conventions v1.43.0.
//
// Spans:
//   - single publish: "send {destination}", PRODUCER, child of the caller's
//     ctx; its context is injected into the message headers;
//   - batch publish: a "create {destination}" PRODUCER span per message,
//     injected into that message, and one "send {destination}" CLIENT span
//     that links to every create span and carries
//     messaging.batch.message_count;
//   - single consume: "process {destination}", CONSUMER, child of the
//     context extracted from the message (or a new root linked to it, see
//     WithLinkedProcessSpans); the handler's ctx carries it;
//   - batch consume: one "process {destination}" CONSUMER span whose parent
//     is the delivery's ambient context, with one link per message.
//
// {destination} is the low-cardinality destination of the operation: the
// subscription pattern on consume, the destination on publish. Temporary
// destinations (NATS reply inboxes) and batches that span several
// destinations leave it out ("send", "process").
//
// Attributes: messaging.system,
// operation name and type, destination name, destination template (the
// subscription pattern, when the message came from a subject it matched),
// destination temporary, partition id, Kafka key (its string form, when it
// is text), offset and tombstone, consumer group, subscription name,
// message id, client id, server address and port, batch message count; the
// body size with WithMessageBodySize; and tracebus.delivery.attempt on
// process spans (1 for the first delivery, 2 for the first retry). Those the semantic conventions
// name for sampling (system, operation name and type, destination name,
// template and temporary, partition, server, consumer group, subscription,
// client id, batch count) are set at span start; a single message's own
// facts (id, key, offset, tombstone, body size, attempt) right after, and
// only when the span is recorded, so that an unsampled message costs no
// attributes. Where the transport reports where
// a sent message was stored (driver.Delivery.Stored, Kafka), the send or
// create span also gets the partition the balancer chose and the offset,
// after the send. Bodies and other headers are
// never recorded. Errors set status Error with the error's message and
// error.type (see ErrorType: a self-naming error's own value, "panic",
// "timeout", "canceled", "decode", "validation", "unmatched" (a message no
// handler of a filtered subscription takes), "closed", the first named
// error type in the chain, "permanent", else "_OTHER"); success leaves the
// status Unset.
//
// Propagation: on publish, the propagator's header fields are replaced, not
// kept, so that a forwarded message carries this publish's context (see
// WithPropagators for which propagator). On consume, headers are read
// case-insensitively, preferring the exact lower-case key when a header
// comes in several cases (broker.Headers), and a missing, malformed or
// hostile context never fails a message: its process span is then a root.
// Two different traceparent headers on one message make it a root too, as
// W3C Trace Context's test suite expects: neither is trusted. Message ids
// and Kafka keys are capped on spans (WithMessageAttributeLimit), batch
// spans link at most OTEL_SPAN_LINK_COUNT_LIMIT (default 128) messages, and the Error status
// text of a handler's error is the one broker.WithErrorText gives it.
//
// Metrics: messaging.client.operation.duration (send; settle with
// WithSettleSpans), messaging.process.duration,
// messaging.client.sent.messages and messaging.client.consumed.messages,
// with the semconv bucket advice (5 ms … 10 s) and error.type on failures.
// As a driver.OutcomeObserver it also counts what the broker's outcome
// policy and the transport decided, with the attributes of
// messaging.process.duration: tracebus.consumer.retried.messages,
// tracebus.consumer.dead_lettered.messages and
// tracebus.consumer.dropped.messages (with tracebus.drop.reason "failed"
// or "slow_consumer"), tracebus.consumer.hung.messages, and the up-down
// counter tracebus.consumer.inflight.messages of messages in handlers now
// (exported to Prometheus as tracebus_consumer_retried_messages_total and
// so on; the up-down counter without _total).
//
// A Telemetry is safe for concurrent use and may be shared by brokers.
type Telemetry struct {
	cfg    config
	tracer trace.Tracer

	opDuration   messagingconv.ClientOperationDuration
	procDuration messagingconv.ProcessDuration
	sent         messagingconv.ClientSentMessages
	consumed     messagingconv.ClientConsumedMessages
	outcomes     outcomeInstruments

	sets setCache // attribute sets of metric points
}

var (
	_ driver.Middleware       = (*Telemetry)(nil)
	_ driver.SettleMiddleware = (*Telemetry)(nil)
)

// durationBuckets is the semconv bucket advice for the messaging duration
// histograms, in seconds.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// NewTelemetry returns the telemetry middleware. Give it to broker.New with
// broker.WithMiddleware, as the first (outermost) middleware so that its
// spans cover the others.
//
// Without WithTracerProvider and WithMeterProvider the global providers are
// used; tracers and instruments obtained from them before the SDK is set up
// forward to the providers otel.SetTracerProvider and otel.SetMeterProvider
// install later, so NewTelemetry may run first.
//
// An instrument that cannot be created is reported through otel.Handle and
// replaced by a no-op one: telemetry never stops a broker.
func NewTelemetry(opts ...Option) *Telemetry {
	cfg := newConfig(opts)
	t := &Telemetry{
		cfg: cfg,
		tracer: cfg.tracerProvider.Tracer(ScopeName,
			trace.WithInstrumentationVersion(version),
			trace.WithSchemaURL(semconv.SchemaURL)),
	}
	meter := cfg.meterProvider.Meter(ScopeName,
		metric.WithInstrumentationVersion(version),
		metric.WithSchemaURL(semconv.SchemaURL))
	var err error
	// On error the messagingconv constructors still return a usable
	// (no-op) instrument.
	if t.opDuration, err = messagingconv.NewClientOperationDuration(meter,
		metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
		otel.Handle(err)
	}
	if t.procDuration, err = messagingconv.NewProcessDuration(meter,
		metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
		otel.Handle(err)
	}
	if t.sent, err = messagingconv.NewClientSentMessages(meter); err != nil {
		otel.Handle(err)
	}
	if t.consumed, err = messagingconv.NewClientConsumedMessages(meter); err != nil {
		otel.Handle(err)
	}
	t.outcomes = newOutcomeInstruments(meter)
	return t
}
