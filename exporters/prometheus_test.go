package exporters_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/semconv/v1.43.0/messagingconv"
	"go.uber.org/goleak"

	"github.com/tracebus/tracebus/exporters"
)

var durationBuckets = metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)

// recordMessaging records the four semconv messaging metrics with the
// messagingconv instruments, as the telemetry middleware does.
func recordMessaging(t *testing.T, mp metric.MeterProvider) {
	t.Helper()
	ctx := context.Background()
	meter := mp.Meter("github.com/tracebus/tracebus/middleware")
	op, err := messagingconv.NewClientOperationDuration(meter, durationBuckets)
	if err != nil {
		t.Fatal(err)
	}
	proc, err := messagingconv.NewProcessDuration(meter, durationBuckets)
	if err != nil {
		t.Fatal(err)
	}
	sent, err := messagingconv.NewClientSentMessages(meter)
	if err != nil {
		t.Fatal(err)
	}
	consumed, err := messagingconv.NewClientConsumedMessages(meter)
	if err != nil {
		t.Fatal(err)
	}
	op.Record(ctx, 0.02, "send", messagingconv.SystemKafka,
		op.AttrOperationType(messagingconv.OperationTypeSend), op.AttrDestinationName("orders"))
	op.Record(ctx, 0.3, "send", messagingconv.SystemKafka,
		op.AttrOperationType(messagingconv.OperationTypeSend), op.AttrDestinationName("orders"))
	proc.Record(ctx, 0.004, "process", messagingconv.SystemKafka,
		proc.AttrDestinationName("orders"), proc.AttrConsumerGroupName("billing"))
	sent.Add(ctx, 2, "send", messagingconv.SystemKafka, sent.AttrDestinationName("orders"))
	consumed.Add(ctx, 1, "process", messagingconv.SystemKafka, consumed.AttrDestinationName("orders"))
}

// scrape fetches url and parses the Prometheus text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, body)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return families
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// family returns the metric family, failing the test without it.
func family(t *testing.T, families map[string]*dto.MetricFamily, name string, typ dto.MetricType) *dto.MetricFamily {
	t.Helper()
	f, ok := families[name]
	if !ok {
		names := make([]string, 0, len(families))
		for n := range families {
			names = append(names, n)
		}
		t.Fatalf("no metric family %s; have %v", name, names)
	}
	if f.GetType() != typ {
		t.Fatalf("%s is a %v, want %v", name, f.GetType(), typ)
	}
	return f
}

func TestPrometheusHandler(t *testing.T) {
	p, err := exporters.Setup(context.Background(), exporters.WithPrometheus(""),
		exporters.WithService("billing", ""), exporters.WithoutGlobal())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	if p.MetricsAddr() != nil {
		t.Errorf("MetricsAddr = %v without a server", p.MetricsAddr())
	}
	recordMessaging(t, p.MeterProvider)

	srv := httptest.NewServer(p.MetricsHandler())
	defer srv.Close()
	families := scrape(t, srv.URL)

	op := family(t, families, "messaging_client_operation_duration_seconds", dto.MetricType_HISTOGRAM)
	if n := len(op.GetMetric()); n != 1 {
		t.Fatalf("%d operation duration series, want 1", n)
	}
	h := op.GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 2 || h.GetSampleSum() < 0.319 || h.GetSampleSum() > 0.321 {
		t.Errorf("operation duration count %d sum %v, want 2 and 0.32", h.GetSampleCount(), h.GetSampleSum())
	}
	// The 14 advised boundaries and +Inf.
	if n := len(h.GetBucket()); n != 15 {
		t.Errorf("%d buckets, want the 14 advised boundaries and +Inf", n)
	}
	want := map[string]string{
		"messaging_operation_name":   "send",
		"messaging_operation_type":   "send",
		"messaging_system":           "kafka",
		"messaging_destination_name": "orders",
	}
	got := labels(op.GetMetric()[0])
	for k, v := range want {
		if got[k] != v {
			t.Errorf("label %s = %q, want %q (labels %v)", k, got[k], v, got)
		}
	}

	family(t, families, "messaging_process_duration_seconds", dto.MetricType_HISTOGRAM)
	sent := family(t, families, "messaging_client_sent_messages_total", dto.MetricType_COUNTER)
	if v := sent.GetMetric()[0].GetCounter().GetValue(); v != 2 {
		t.Errorf("sent messages = %v, want 2", v)
	}
	family(t, families, "messaging_client_consumed_messages_total", dto.MetricType_COUNTER)

	info := family(t, families, "target_info", dto.MetricType_GAUGE)
	if got := labels(info.GetMetric()[0])["service_name"]; got != "billing" {
		t.Errorf("target_info service_name = %q, want billing", got)
	}
}

func TestPrometheusServer(t *testing.T) {
	p, err := exporters.Setup(context.Background(), exporters.WithPrometheus("127.0.0.1:0"), exporters.WithoutGlobal())
	if err != nil {
		t.Fatal(err)
	}
	recordMessaging(t, p.MeterProvider)
	url := "http://" + p.MetricsAddr().String() + "/metrics"
	family(t, scrape(t, url), "messaging_client_sent_messages_total", dto.MetricType_COUNTER)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	http.DefaultClient.CloseIdleConnections()
	if resp, err := http.Get(url); err == nil {
		resp.Body.Close()
		t.Fatal("Prometheus server still serving after Shutdown")
	}
}

// TestPrometheusServerAddressInUse fails Setup late, after it has made an
// OTLP exporter: that one must be released, or goleak finds its connection.
func TestPrometheusServerAddressInUse(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p, err := exporters.Setup(context.Background(), exporters.WithPrometheus("127.0.0.1:0"), exporters.WithoutGlobal())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	_, err = exporters.Setup(context.Background(),
		exporters.WithOTLP(exporters.ProtocolGRPC, "http://"+deadAddress(t)),
		exporters.WithPrometheus(p.MetricsAddr().String()), exporters.WithoutGlobal())
	if err == nil {
		t.Fatal("Setup bound an address already in use")
	}
}
