package middleware

import (
	"os"
	"strconv"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Option configures the Telemetry middleware.
type Option interface {
	apply(*config)
}

type config struct {
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	propagator     propagation.TextMapPropagator

	linkProcess bool // single consume: new root + link instead of child
	noCreate    bool // batch publish: no per-message create spans
	bodySize    bool // record messaging.message.body.size
	settle      bool // settle spans and metrics

	attrLimit int // bytes of message id and Kafka key attributes; <= 0: no cap
	linkLimit int // links of a batch span; <= 0: no cap
}

// defaultMessageAttributeLimit is how many bytes of a message id or Kafka
// key go into span attributes unless WithMessageAttributeLimit says
// otherwise: the broker's own cap on the ids in its log lines, so that a
// span and a log line about one message show the same id.
const defaultMessageAttributeLimit = 256

// defaultBatchLinkLimit is how many links a batch span gets unless
// OTEL_SPAN_LINK_COUNT_LIMIT says otherwise: the
// OpenTelemetry SDK's default span link limit, beyond which it drops links
// anyway.
const defaultBatchLinkLimit = 128

// newConfig applies opts over the defaults: the global TracerProvider and
// MeterProvider, taken here, at construction. That is late enough: the otel
// globals hand out delegating tracers and instruments that forward to what
// otel.SetTracerProvider and otel.SetMeterProvider install later (the first
// time each is called), so NewTelemetry may run before the SDK is set up.
// The propagator is looked up on every use instead; see WithPropagators.
func newConfig(opts []Option) config {
	c := config{attrLimit: defaultMessageAttributeLimit, linkLimit: defaultBatchLinkLimit}
	if n, err := strconv.Atoi(os.Getenv("OTEL_SPAN_LINK_COUNT_LIMIT")); err == nil {
		c.linkLimit = n
	}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if c.tracerProvider == nil {
		c.tracerProvider = otel.GetTracerProvider()
	}
	if c.meterProvider == nil {
		c.meterProvider = otel.GetMeterProvider()
	}
	return c
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithTracerProvider sets the TracerProvider spans are created with. The
// default, and the value used for nil, is otel.GetTracerProvider().
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) { c.tracerProvider = tp })
}

// WithMeterProvider sets the MeterProvider the messaging metrics are
// recorded with. The default, and the value used for nil, is
// otel.GetMeterProvider().
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.meterProvider = mp })
}

// WithPropagators sets the propagator that writes the creation context (and
// baggage) into message headers on publish and reads it back on consume.
//
// Without it (or with nil) the global propagator is used, looked up on every
// message, so otel.SetTextMapPropagator (for example with autoprop, which
// honours OTEL_PROPAGATORS) takes effect whenever it is called. As long as no
// global propagator was ever set — OpenTelemetry's default then propagates
// nothing, which would silently cut every trace at the broker and drop all
// baggage — W3C Trace Context and W3C Baggage are used, baggage through
// baggage.Propagator, which cuts baggage over the W3C limits
// deterministically and reports the cut (exporters.Setup installs the
// same). A propagator you build yourself should use baggage.Propagator
// rather than propagation.Baggage, which drops over-limit baggage whole. To
// propagate nothing, set a propagator that does nothing, such as
// propagation.NewCompositeTextMapPropagator().
func WithPropagators(p propagation.TextMapPropagator) Option {
	return optionFunc(func(c *config) { c.propagator = p })
}

// WithMessageAttributeLimit caps the message id (messaging.message.id) and
// Kafka key (messaging.kafka.message.key) recorded on spans and links at n
// bytes, cut at a UTF-8 character boundary; n <= 0 records them whole. The
// default is 256 bytes, the broker's cap on ids in its log lines: both come from whoever sent the
// message, and uncapped they let a sender size the memory of the span
// queue (64 KB ids held 156 MiB while a collector was down).
func WithMessageAttributeLimit(n int) Option {
	return optionFunc(func(c *config) { c.attrLimit = n })
}

// withBatchLinkLimit caps the links of a batch span at n (n <= 0: every
// message), for the tests; services set OTEL_SPAN_LINK_COUNT_LIMIT, which the
// SDK's tracer provider and this middleware both read.
func withBatchLinkLimit(n int) Option {
	return optionFunc(func(c *config) { c.linkLimit = n })
}

// WithLinkedProcessSpans makes the process span of a single message the root
// of a new trace with a link to the message's creation context, instead of
// its child (the default). This is kotel's LinkSpans: choose it when one
// trace per message flow would grow too large (long pipelines, fan-out to
// many consumers) or when the producer's sampling decision must not decide
// the consumer's. Batch consumes always use links; this option does not
// change them.
func WithLinkedProcessSpans() Option {
	return optionFunc(func(c *config) { c.linkProcess = true })
}

// WithoutCreateSpans turns off the per-message "create" spans of a batch
// publish. The batch's "send" span then becomes a PRODUCER span and its
// context is injected into every message, as the semantic conventions
// describe for instrumentations without create spans. Single publishes never
// have create spans.
func WithoutCreateSpans() Option {
	return optionFunc(func(c *config) { c.noCreate = true })
}

// WithMessageBodySize records messaging.message.body.size (an opt-in
// attribute) on the spans that cover exactly one message: single send and
// process spans and the create spans of a batch.
func WithMessageBodySize() Option {
	return optionFunc(func(c *config) { c.bodySize = true })
}

// WithSettleSpans adds a CLIENT span, child of the process span, around the
// settlement of every delivery ("ack orders", "commit orders", "nak orders",
// "term orders"), and records its duration in
// messaging.client.operation.duration with operation type settle. Off by
// default: settlement is usually fast and doubles the span count.
func WithSettleSpans() Option {
	return optionFunc(func(c *config) { c.settle = true })
}
