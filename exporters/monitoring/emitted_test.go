package monitoring

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tracebus/tracebus/exporters"
	"github.com/tracebus/tracebus/middleware"
)

// registeredSeriesNames returns the series names, as Prometheus stores them
// (with _total, _bucket, _sum, _count), of every instrument the telemetry
// middleware registers, measured or not: the middleware gets a meter
// provider of exporters.Setup's own, with its Prometheus exporter, whose
// meters record a zero on each instrument as it is created.
func registeredSeriesNames(t *testing.T) map[string]bool {
	t.Helper()
	ctx := context.Background()
	p, err := exporters.Setup(ctx,
		exporters.WithService("monitoring-test", ""),
		exporters.WithoutGlobal(),
		exporters.WithSpanExporter(tracetest.NewInMemoryExporter()),
		exporters.WithPrometheus(""))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Shutdown(ctx) }()
	middleware.NewTelemetry(
		middleware.WithTracerProvider(p.TracerProvider),
		middleware.WithMeterProvider(touchingMeterProvider{p.MeterProvider}))

	rec := httptest.NewRecorder()
	p.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse the exporter's scrape: %v", err)
	}
	names := map[string]bool{}
	for name, f := range families {
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[name], names[name+"_sum"], names[name+"_count"] = true, true, true
		default:
			names[name] = true
		}
	}
	return names
}

// touchingMeterProvider hands out meters whose synchronous instruments
// record a zero, without attributes, when they are created, so that an
// exporter shows every instrument registered, not only those measured.
type touchingMeterProvider struct{ metric.MeterProvider }

func (p touchingMeterProvider) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	return touchingMeter{p.MeterProvider.Meter(name, opts...)}
}

type touchingMeter struct{ metric.Meter }

// touched returns i and err after calling touch on i when err is nil.
func touched[I any](i I, err error, touch func(I)) (I, error) {
	if err == nil {
		touch(i)
	}
	return i, err
}

var bg = context.Background()

func (m touchingMeter) Int64Counter(n string, o ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	i, err := m.Meter.Int64Counter(n, o...)
	return touched(i, err, func(i metric.Int64Counter) { i.Add(bg, 0) })
}

func (m touchingMeter) Float64Counter(n string, o ...metric.Float64CounterOption) (metric.Float64Counter, error) {
	i, err := m.Meter.Float64Counter(n, o...)
	return touched(i, err, func(i metric.Float64Counter) { i.Add(bg, 0) })
}

func (m touchingMeter) Int64UpDownCounter(n string, o ...metric.Int64UpDownCounterOption) (metric.Int64UpDownCounter, error) {
	i, err := m.Meter.Int64UpDownCounter(n, o...)
	return touched(i, err, func(i metric.Int64UpDownCounter) { i.Add(bg, 0) })
}

func (m touchingMeter) Float64UpDownCounter(n string, o ...metric.Float64UpDownCounterOption) (metric.Float64UpDownCounter, error) {
	i, err := m.Meter.Float64UpDownCounter(n, o...)
	return touched(i, err, func(i metric.Float64UpDownCounter) { i.Add(bg, 0) })
}

func (m touchingMeter) Int64Histogram(n string, o ...metric.Int64HistogramOption) (metric.Int64Histogram, error) {
	i, err := m.Meter.Int64Histogram(n, o...)
	return touched(i, err, func(i metric.Int64Histogram) { i.Record(bg, 0) })
}

func (m touchingMeter) Float64Histogram(n string, o ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	i, err := m.Meter.Float64Histogram(n, o...)
	return touched(i, err, func(i metric.Float64Histogram) { i.Record(bg, 0) })
}

func (m touchingMeter) Int64Gauge(n string, o ...metric.Int64GaugeOption) (metric.Int64Gauge, error) {
	i, err := m.Meter.Int64Gauge(n, o...)
	return touched(i, err, func(i metric.Int64Gauge) { i.Record(bg, 0) })
}

func (m touchingMeter) Float64Gauge(n string, o ...metric.Float64GaugeOption) (metric.Float64Gauge, error) {
	i, err := m.Meter.Float64Gauge(n, o...)
	return touched(i, err, func(i metric.Float64Gauge) { i.Record(bg, 0) })
}

// TestRegisteredSeriesNames checks the derivation the name check rests on:
// the four semantic-convention instruments appear under the names the
// README promises, before anything was measured.
func TestRegisteredSeriesNames(t *testing.T) {
	names := registeredSeriesNames(t)
	for _, want := range []string{
		"messaging_client_operation_duration_seconds_bucket",
		"messaging_process_duration_seconds_count",
		"messaging_client_sent_messages_total",
		"messaging_client_consumed_messages_total",
	} {
		if !names[want] {
			t.Errorf("%s not among the registered names %v", want, names)
		}
	}
}
