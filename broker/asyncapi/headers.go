package asyncapi

import (
	"encoding/json"
	"slices"

	"github.com/invopop/jsonschema"
	orderedmap "github.com/pb33f/ordered-map/v2"
	"go.opentelemetry.io/otel/propagation"

	"github.com/tracebus/tracebus/broker"
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

// messageHeaders is the headers schema of a message: the propagation
// headers and, for typed messages, the content-type header subscribers pick
// their codec by. The schema of each content type is kept once, under
// components/schemas as "Headers." and the content type.
func (bd *builder) messageHeaders(contentType string) json.RawMessage {
	if contentType == "" {
		return bd.headers
	}
	name, ok := bd.contentHeaders[contentType]
	if !ok {
		props := orderedmap.New[string, *jsonschema.Schema]()
		props.Set(broker.HeaderContentType, &jsonschema.Schema{
			Type:        "string",
			Const:       contentType,
			Description: "The content type of the body; subscribers decode it with the codec it names.",
		})
		s := &jsonschema.Schema{Type: "object", Properties: props}
		if bd.headers != nil {
			s.AllOf = []*jsonschema.Schema{{Ref: schemaRefPrefix + headersSchemaName}}
		}
		b, _ := json.Marshal(s)
		name = unique("Headers."+componentKey(contentType), bd.schemas.isTaken)
		bd.schemas.reserve(name, b)
		bd.contentHeaders[contentType] = name
	}
	return json.RawMessage(`{"$ref":"` + schemaRefPrefix + name + `"}`)
}
