package asyncapi

import (
	"encoding/json"
	"slices"

	"github.com/invopop/jsonschema"
	orderedmap "github.com/pb33f/ordered-map/v2"
	"go.opentelemetry.io/otel/propagation"
)

// headersSchemaName is the components key of the propagation headers.
const headersSchemaName = "PropagationHeaders"

// knownHeaders describes the fields of the W3C propagators.
var knownHeaders = map[string]*jsonschema.Schema{
	"traceparent": {
		Type:        "string",
		Description: "W3C Trace Context: the trace id and the id of the span that sent the message.",
		Pattern:     "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
		Examples:    []any{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	},
	"tracestate": {
		Type:        "string",
		Description: "W3C Trace Context: vendor-specific trace state.",
	},
	"baggage": {
		Type:        "string",
		Description: "W3C Baggage: application-defined key-value pairs propagated with the trace.",
		Examples:    []any{"tenant=acme,region=eu"},
	},
}

// headersSchema is the schema of the headers p writes into every message the
// telemetry middleware publishes, or nil when p writes none.
func headersSchema(p propagation.TextMapPropagator) json.RawMessage {
	if p == nil {
		return nil
	}
	// Sorted: composite propagators return their fields in map order.
	fields := slices.Sorted(slices.Values(p.Fields()))
	if len(fields) == 0 {
		return nil
	}
	props := orderedmap.New[string, *jsonschema.Schema]()
	for _, f := range fields {
		s := knownHeaders[f]
		if s == nil {
			s = &jsonschema.Schema{Type: "string", Description: "Trace propagation header written by the configured propagator."}
		}
		props.Set(f, s)
	}
	b, _ := json.Marshal(&jsonschema.Schema{
		Type:        "object",
		Description: "Trace context and baggage written by the telemetry middleware when the message is published; present on messages sent by traced publishers.",
		Properties:  props,
	})
	return b
}
