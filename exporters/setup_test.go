package exporters_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/tracebus/tracebus/exporters"
)

func shutdown(t *testing.T, p *exporters.Providers) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestSetupInstallsGlobals(t *testing.T) {
	t.Setenv("OTEL_PROPAGATORS", "jaeger")
	spans := tracetest.NewSpanRecorder()
	p, err := exporters.Setup(context.Background(), exporters.WithMemory(spans, sdkmetric.NewManualReader()), exporters.WithService("global", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, p)
	if otel.GetTracerProvider() != trace.TracerProvider(p.TracerProvider) {
		t.Error("tracer provider not installed")
	}
	if otel.GetMeterProvider() != p.MeterProvider {
		t.Error("meter provider not installed")
	}
	carrier := propagation.MapCarrier{}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID(1), SpanID: spanID(1), TraceFlags: trace.FlagsSampled})
	otel.GetTextMapPropagator().Inject(trace.ContextWithSpanContext(context.Background(), sc), carrier)
	if carrier.Get("uber-trace-id") == "" {
		t.Errorf("global propagator injected %v, want the jaeger propagator from OTEL_PROPAGATORS", carrier)
	}
	_, span := otel.Tracer("global-test").Start(context.Background(), "through the global")
	span.End()
	if n := len(spans.Ended()); n != 1 {
		t.Errorf("%d spans recorded through the global tracer provider, want 1", n)
	}
}

func TestWithoutGlobal(t *testing.T) {
	tp := tracenoop.NewTracerProvider()
	prop := propagation.TraceContext{}
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(prop)
	p, err := exporters.Setup(context.Background(), exporters.WithMemory(tracetest.NewSpanRecorder(), sdkmetric.NewManualReader()), exporters.WithoutGlobal())
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, p)
	if otel.GetTracerProvider() != trace.TracerProvider(tp) || otel.GetTextMapPropagator() != propagation.TextMapPropagator(prop) {
		t.Error("WithoutGlobal changed the globals")
	}
}

func TestMemory(t *testing.T) {
	ctx := context.Background()
	spans, reader := tracetest.NewSpanRecorder(), sdkmetric.NewManualReader()
	p, err := exporters.Setup(ctx, exporters.WithMemory(spans, reader), exporters.WithService("memory", ""), exporters.WithoutGlobal())
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, p)

	_, span := p.TracerProvider.Tracer("t").Start(ctx, "process orders")
	if n := len(spans.Started()); n != 1 {
		t.Errorf("%d started spans, want 1", n)
	}
	span.End()
	ended := spans.Ended()
	if len(ended) != 1 || ended[0].Name() != "process orders" {
		t.Fatalf("ended spans = %v, want process orders at once", ended)
	}
	counter, err := p.MeterProvider.Meter("t").Int64Counter("messages")
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(ctx, 3)
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	if len(rm.ScopeMetrics) != 1 || rm.ScopeMetrics[0].Metrics[0].Name != "messages" {
		t.Fatalf("collected %+v, want the messages counter", rm.ScopeMetrics)
	}
	if v, _ := rm.Resource.Set().Value("service.name"); v.AsString() != "memory" {
		t.Errorf("metrics resource service.name = %q", v.AsString())
	}
}

func TestJSONLines(t *testing.T) {
	ctx := context.Background()
	var out syncBuffer
	p, err := exporters.Setup(ctx, exporters.WithSpanExporter(jsonLines(t, &out)), exporters.WithSynchronousExport(), exporters.WithoutGlobal())
	if err != nil {
		t.Fatal(err)
	}
	tracer := p.TracerProvider.Tracer("t")
	for _, name := range []string{"send a", "send b", "send c"} {
		_, span := tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindProducer))
		span.End()
	}
	// Synchronous export: every line is there before Shutdown.
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want one per span:\n%s", len(lines), out.String())
	}
	for i, line := range lines {
		var span struct {
			Name        string
			SpanContext struct{ TraceID string }
		}
		if err := json.Unmarshal([]byte(line), &span); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i, err, line)
		}
		if want := []string{"send a", "send b", "send c"}[i]; span.Name != want || span.SpanContext.TraceID == "" {
			t.Errorf("line %d = %s, want span %q with a trace id", i, line, want)
		}
	}
	shutdown(t, p)
}

func TestWaterfallThroughSetup(t *testing.T) {
	ctx := context.Background()
	var out syncBuffer
	p, err := exporters.Setup(ctx, exporters.WithService("checkout", ""), exporters.WithoutGlobal(),
		exporters.WithSpanExporter(exporters.NewWaterfall(&out, &exporters.WaterfallOptions{Linger: time.Hour})))
	if err != nil {
		t.Fatal(err)
	}
	tracer := p.TracerProvider.Tracer("t")
	ctx, parent := tracer.Start(ctx, "send orders", trace.WithSpanKind(trace.SpanKindProducer))
	_, child := tracer.Start(ctx, "encode")
	child.End()
	parent.End()

	// ForceFlush empties the batch queue into the Waterfall and makes it
	// print what it is lingering on.
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"trace " + parent.SpanContext().TraceID().String() + " · ",
		"2 spans · 1 service",
		"  send orders  checkout  producer",
		"  └─ encode    checkout  internal",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("waterfall lacks %q:\n%s", want, got)
		}
	}
	shutdown(t, p)
}

func TestSpanExporterOption(t *testing.T) {
	ctx := context.Background()
	exp := tracetest.NewInMemoryExporter()
	p, err := exporters.Setup(ctx, exporters.WithSpanExporter(exp), exporters.WithoutGlobal())
	if err != nil {
		t.Fatal(err)
	}
	if got := exporters.PipelineNames(p); len(got) != 1 || got[0] != "*tracetest.InMemoryExporter" {
		t.Errorf("pipelines = %v", got)
	}
	_, span := p.TracerProvider.Tracer("t").Start(ctx, "batched")
	span.End()
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("%d spans exported before the batch was due: not batched", n)
	}
	if err := p.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(exp.GetSpans()); n != 1 {
		t.Errorf("%d spans exported after ForceFlush, want 1", n)
	}
	shutdown(t, p)
}

// stuckExporter blocks every export until released, like a collector that
// stopped answering.
type stuckExporter struct {
	release  chan struct{}
	once     sync.Once
	mu       sync.Mutex
	exported int
}

func (e *stuckExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	select {
	case <-e.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	e.mu.Lock()
	e.exported += len(spans)
	e.mu.Unlock()
	return nil
}

func (e *stuckExporter) Shutdown(context.Context) error { return nil }

func (e *stuckExporter) unblock() { e.once.Do(func() { close(e.release) }) }

// TestQueueDrops fills the bounded queue behind an exporter that does not
// move: span.End keeps returning, the overflow is dropped, and Shutdown
// counts exactly what was lost.
func TestQueueDrops(t *testing.T) {
	t.Setenv("OTEL_BSP_MAX_QUEUE_SIZE", "8")
	t.Setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "1")
	ctx := context.Background()
	exp := &stuckExporter{release: make(chan struct{})}
	defer exp.unblock()
	p, err := exporters.Setup(ctx, exporters.WithSpanExporter(exp), exporters.WithoutGlobal())
	if err != nil {
		t.Fatal(err)
	}
	const spans = 1000
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		tracer := p.TracerProvider.Tracer("t")
		for range spans {
			_, span := tracer.Start(ctx, "send")
			span.End()
		}
	}()
	select {
	case <-ended:
	case <-time.After(time.Minute):
		t.Fatal("span.End blocked behind a stuck exporter")
	}
	exp.unblock()

	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = p.Shutdown(sctx)
	var lost *exporters.NotExportedError
	if !errors.As(err, &lost) {
		t.Fatalf("Shutdown = %v, want a NotExportedError", err)
	}
	exp.mu.Lock()
	exported := exp.exported
	exp.mu.Unlock()
	if lost.Ended != spans || lost.Lost != int64(spans-exported) || lost.Lost == 0 {
		t.Errorf("NotExportedError %+v, exporter got %d of %d", lost, exported, spans)
	}
	// queue (8) + one batch in the stuck export (4) + the batch forming
	// behind it (4) is the most that can have been kept.
	if exported > 16 {
		t.Errorf("%d spans exported; the queue is not bounded", exported)
	}
}

func TestShutdownClean(t *testing.T) {
	ctx := context.Background()
	var out syncBuffer
	p, err := exporters.Setup(ctx, exporters.WithSpanExporter(jsonLines(t, &out)), exporters.WithPrometheus(""), exporters.WithoutGlobal())
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		_, span := p.TracerProvider.Tracer("t").Start(ctx, "send")
		span.End()
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with nothing lost = %v", err)
	}
	if n := strings.Count(out.String(), "\n"); n != 10 {
		t.Errorf("Shutdown flushed %d spans, want 10", n)
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown = %v", err)
	}
}

// jsonLines is the OpenTelemetry stdout exporter writing to w, the way the
// documentation of WithSpanExporter shows it.
func jsonLines(t *testing.T, w io.Writer) sdktrace.SpanExporter {
	t.Helper()
	exp, err := stdouttrace.New(stdouttrace.WithWriter(w))
	if err != nil {
		t.Fatal(err)
	}
	return exp
}
