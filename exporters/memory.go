package exporters

import (
	"context"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// Memory keeps a test's telemetry in memory: spans recorded synchronously as
// they start and end, and metrics collected when asked. Give it to Setup with
// WithMemory; the fields are the plain SDK types, for tests that want more
// than the two helpers.
type Memory struct {
	// SpanRecorder records every sampled span, without a queue, so a span is
	// visible as soon as End returns.
	SpanRecorder *tracetest.SpanRecorder
	// Reader collects the metrics on demand.
	Reader *sdkmetric.ManualReader
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory {
	return &Memory{SpanRecorder: tracetest.NewSpanRecorder(), Reader: sdkmetric.NewManualReader()}
}

// Ended returns the ended spans in the order they ended.
func (m *Memory) Ended() []sdktrace.ReadOnlySpan { return m.SpanRecorder.Ended() }

// Collect returns the metrics aggregated so far.
func (m *Memory) Collect(ctx context.Context) (metricdata.ResourceMetrics, error) {
	var rm metricdata.ResourceMetrics
	err := m.Reader.Collect(ctx, &rm)
	return rm, err
}
