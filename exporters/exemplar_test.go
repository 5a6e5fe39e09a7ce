package exporters_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/exporters"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
)

// A Prometheus scrape that asks for OpenMetrics gets exemplars: the
// process-duration bucket of a handled message names the trace of its
// process span.
func TestPrometheusExemplarsLinkToTraces(t *testing.T) {
	ctx := context.Background()
	p, err := exporters.Setup(ctx, exporters.WithPrometheus(""), exporters.WithMemory(tracetest.NewSpanRecorder(), sdkmetric.NewManualReader()), exporters.WithoutGlobal())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	traceID := handleOne(t, p, nil).TraceID().String()

	srv := httptest.NewServer(p.MetricsHandler())
	defer srv.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	// What Prometheus sends with exemplar storage on.
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Fatalf("Content-Type %q, want OpenMetrics", ct)
	}
	exemplar := regexp.MustCompile(`(?m)^messaging_process_duration_seconds_bucket\{[^}]*\} 1 # \{[^}]*trace_id="` + traceID + `"[^}]*\} `)
	if !exemplar.Match(body) {
		t.Errorf("no process-duration bucket with an exemplar for trace %s:\n%s", traceID, body)
	}
}

// handleOne passes one message through a broker on the memory transport,
// traced and measured by p, with the broker options opts; inHandler, when
// not nil, runs in the handler with its ctx. It returns the span context of
// the handler's process span once the broker is closed.
func handleOne(t *testing.T, p *exporters.Providers, inHandler func(context.Context), opts ...broker.Option) trace.SpanContext {
	t.Helper()
	ctx := context.Background()
	tel := middleware.NewTelemetry(middleware.WithTracerProvider(p.TracerProvider),
		middleware.WithMeterProvider(p.MeterProvider), middleware.WithPropagators(p.Propagator))
	b := broker.New(testutil.Memory(t), append([]broker.Option{broker.WithMiddleware(tel)}, opts...)...)
	spans := make(chan trace.SpanContext, 1)
	if err := b.Subscribe("orders", func(ctx context.Context, _ *broker.Message) error {
		if inHandler != nil {
			inHandler(ctx)
		}
		spans <- trace.SpanContextFromContext(ctx)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, &broker.Message{Destination: "orders", Body: []byte("7")}); err != nil {
		t.Fatal(err)
	}
	sc := <-spans
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return sc
}
