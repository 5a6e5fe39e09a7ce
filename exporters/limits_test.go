package exporters_test

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tracebus/tracebus/exporters"
)

// TestSetupAttributeValueLengthLimit checks that Setup's tracer provider
// caps attribute values unless the environment sets the limit.
func TestSetupAttributeValueLengthLimit(t *testing.T) {
	long := strings.Repeat("v", 64<<10)
	for _, tc := range []struct {
		name string
		env  map[string]string
		want int
	}{
		{"default", nil, 4096},
		{"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT=100", map[string]string{"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "100"}, 100},
		{"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT=50", map[string]string{"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "50"}, 50},
		{"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT=-1 means none", map[string]string{"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "-1"}, len(long)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			m := tracetest.NewSpanRecorder()
			p, err := exporters.Setup(context.Background(), exporters.WithoutGlobal(), exporters.WithMemory(m, sdkmetric.NewManualReader()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
			_, span := p.TracerProvider.Tracer("t").Start(context.Background(), "s")
			span.SetAttributes(attribute.String("big", long))
			span.End()
			ended := m.Ended()
			if len(ended) != 1 {
				t.Fatalf("%d spans recorded, want 1", len(ended))
			}
			for _, kv := range ended[0].Attributes() {
				if kv.Key == "big" && len(kv.Value.AsString()) != tc.want {
					t.Errorf("attribute of %d bytes recorded, want %d", len(kv.Value.AsString()), tc.want)
				}
			}
		})
	}
}
