package exporters

import (
	"os"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// defaultAttributeValueLengthLimit is the attribute value length limit of
// the tracer provider Setup builds, unless OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT
// or OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT set one (-1 for none). The SDK
// has no limit by default, so a span queue waiting for a collector that is
// down would be sized by whatever values the spans carry; with this limit
// it is bounded by the SDK's queue size, attribute count limit and this
// length. tracebus's own sender-chosen attributes (message ids, Kafka keys)
// are capped lower by the middleware (WithMessageAttributeLimit).
const defaultAttributeValueLengthLimit = 4096

// spanLimits are the SDK's limits as the environment sets them, with
// defaultAttributeValueLengthLimit where it sets no value length limit.
func spanLimits() sdktrace.SpanLimits {
	l := sdktrace.NewSpanLimits() // reads OTEL_SPAN_* and OTEL_ATTRIBUTE_* variables
	_, general := os.LookupEnv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT")
	_, span := os.LookupEnv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT")
	if !general && !span {
		l.AttributeValueLengthLimit = defaultAttributeValueLengthLimit
	}
	return l
}
