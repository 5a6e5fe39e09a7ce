package testutil

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// Recorder captures the spans and metrics of a test with the real
// OpenTelemetry SDK: a TracerProvider that records every ended span
// synchronously and a MeterProvider read on demand. Give its providers to
// the code under test instead of touching the globals.
type Recorder struct {
	// TracerProvider records every span it starts, sampled always.
	TracerProvider *sdktrace.TracerProvider
	// MeterProvider aggregates into Reader.
	MeterProvider *sdkmetric.MeterProvider
	// SpanRecorder holds the ended spans.
	SpanRecorder *tracetest.SpanRecorder
	// Reader collects the metrics on demand.
	Reader *sdkmetric.ManualReader
}

// NewRecorder returns a Recorder whose providers are shut down when the test
// ends.
func NewRecorder(t testing.TB) *Recorder {
	t.Helper()
	r := &Recorder{SpanRecorder: tracetest.NewSpanRecorder(), Reader: sdkmetric.NewManualReader()}
	r.TracerProvider = sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithSpanProcessor(r.SpanRecorder),
	)
	r.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(r.Reader))
	t.Cleanup(func() {
		ctx := context.Background()
		_ = r.TracerProvider.Shutdown(ctx)
		_ = r.MeterProvider.Shutdown(ctx)
	})
	return r
}

// Spans returns the ended spans in the order they ended.
func (r *Recorder) Spans() []sdktrace.ReadOnlySpan { return r.SpanRecorder.Ended() }

// SpansByName returns the ended spans with the given name, in end order.
func (r *Recorder) SpansByName(name string) []sdktrace.ReadOnlySpan {
	return SpansNamed(r.Spans(), name)
}

// SpanByName returns the one ended span with the given name and fails the
// test when there is not exactly one.
func (r *Recorder) SpanByName(t testing.TB, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	spans := r.SpansByName(name)
	if len(spans) != 1 {
		t.Fatalf("want exactly one span %q, got %d; spans:\n%s", name, len(spans), Tree(r.Spans()))
	}
	return spans[0]
}

// Metrics collects the current metrics, failing the test on error.
func (r *Recorder) Metrics(t testing.TB) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("collect metrics: %v", err)
	}
	return rm
}

// Metric returns the metric with the given name from the collected metrics,
// and false when there is none.
func (r *Recorder) Metric(t testing.TB, name string) (metricdata.Metrics, bool) {
	t.Helper()
	return FindMetric(r.Metrics(t), name)
}

// Tree renders the recorded spans as an indented tree; see Tree.
func (r *Recorder) Tree() string { return Tree(r.Spans()) }

// Reset forgets the spans recorded so far. Metrics keep accumulating.
func (r *Recorder) Reset() { r.SpanRecorder.Reset() }

// FindMetric returns the metric with the given name, and false when there is
// none.
func FindMetric(rm metricdata.ResourceMetrics, name string) (metricdata.Metrics, bool) {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m, true
			}
		}
	}
	return metricdata.Metrics{}, false
}
