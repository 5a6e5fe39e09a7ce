package middleware_test

import (
	"context"
	"slices"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
)

var w3c = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// newTel returns a Telemetry recording into a fresh Recorder.
func newTel(t *testing.T, opts ...middleware.Option) (*middleware.Telemetry, *testutil.Recorder) {
	t.Helper()
	rec := testutil.NewRecorder(t)
	opts = append([]middleware.Option{
		middleware.WithTracerProvider(rec.TracerProvider),
		middleware.WithMeterProvider(rec.MeterProvider),
		middleware.WithPropagators(w3c),
	}, opts...)
	return middleware.NewTelemetry(opts...), rec
}

func ok(context.Context, driver.Operation, []*broker.Message) error { return nil }

// attrMap returns the attributes as a map from key to emitted value.
func attrMap(kvs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

// wantAttrs checks that every kv of want is among got, and that none of
// the keys in absent is.
func wantAttrs(t *testing.T, what string, got []attribute.KeyValue, want []attribute.KeyValue, absent ...attribute.Key) {
	t.Helper()
	m := attrMap(got)
	for _, kv := range want {
		if v, ok := m[kv.Key]; !ok || v != kv.Value {
			t.Errorf("%s: %s = %s (present %v), want %s", what, kv.Key, v.String(), ok, kv.Value.String())
		}
	}
	for _, k := range absent {
		if v, ok := m[k]; ok {
			t.Errorf("%s: %s = %s, want it absent", what, k, v.String())
		}
	}
}

// points returns the data points' attribute sets of a metric, with each
// point's count (histogram) or value (counter).
func points(t *testing.T, rec *testutil.Recorder, name string) map[attribute.Distinct]int64 {
	t.Helper()
	m, found := rec.Metric(t, name)
	if !found {
		t.Fatalf("no metric %s", name)
	}
	out := map[attribute.Distinct]int64{}
	switch d := m.Data.(type) {
	case metricdata.Histogram[float64]:
		for _, dp := range d.DataPoints {
			out[dp.Attributes.Equivalent()] = int64(dp.Count)
		}
	case metricdata.Sum[int64]:
		for _, dp := range d.DataPoints {
			out[dp.Attributes.Equivalent()] = dp.Value
		}
	default:
		t.Fatalf("metric %s has data %T", name, m.Data)
	}
	return out
}

func set(kvs ...attribute.KeyValue) attribute.Distinct {
	s := attribute.NewSet(slices.Clone(kvs)...)
	return s.Equivalent()
}

func spanNames(spans []sdktrace.ReadOnlySpan) []string {
	names := make([]string, len(spans))
	for i, s := range spans {
		names[i] = s.Name()
	}
	return names
}

// spanByID returns the recorded span with the given id.
func spanByID(t *testing.T, rec *testutil.Recorder, id trace.SpanID) sdktrace.ReadOnlySpan {
	t.Helper()
	for _, s := range rec.Spans() {
		if s.SpanContext().SpanID() == id {
			return s
		}
	}
	t.Fatalf("no span %s among %q", id, spanNames(rec.Spans()))
	return nil
}
