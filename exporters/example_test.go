package exporters_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/exporters"
)

// A service sets up OpenTelemetry once, at start, and shuts it down on the
// way out so that the last spans and metrics are flushed. Where they go is
// decided by the OTEL_* environment: OTLP over HTTP to localhost:4318 unless
// configured otherwise.
func ExampleSetup() {
	ctx := context.Background()
	p, err := exporters.Setup(ctx,
		exporters.WithService("billing", "1.4.0"),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			log.Print(err) // e.g. "exporters: otlp: 12 of 3400 spans not exported (...)"
		}
	}()
	// ... broker.New(..., broker.WithMiddleware(middleware.NewTelemetry())) uses the globals.
}

// On a developer's machine, traces go to the terminal and metrics to a
// Prometheus endpoint; no collector is needed.
func ExampleSetup_terminal() {
	ctx := context.Background()
	p, err := exporters.Setup(ctx,
		exporters.WithService("billing", ""),
		exporters.WithSpanExporter(exporters.NewWaterfall(os.Stderr, nil)),
		exporters.WithPrometheus("localhost:9464"),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Shutdown(context.Background())
}

// OTLP to a collector, named explicitly instead of through the environment.
func ExampleWithOTLP() {
	ctx := context.Background()
	p, err := exporters.Setup(ctx,
		exporters.WithService("billing", ""),
		exporters.WithOTLP(exporters.ProtocolGRPC, "http://otel-collector:4317"),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Shutdown(context.Background())
}

// A test records spans and metrics in memory and reads them back at once.
func ExampleWithMemory() {
	ctx := context.Background()
	spans := tracetest.NewSpanRecorder()
	p, err := exporters.Setup(ctx, exporters.WithMemory(spans, sdkmetric.NewManualReader()), exporters.WithoutGlobal())
	if err != nil {
		log.Fatal(err)
	}
	defer p.Shutdown(ctx)

	_, span := p.TracerProvider.Tracer("example").Start(ctx, "process orders", trace.WithSpanKind(trace.SpanKindConsumer))
	span.End()
	for _, s := range spans.Ended() {
		fmt.Println(s.Name(), s.SpanKind())
	}
	// Output: process orders consumer
}

// Mount the Prometheus handler on your own server.
func ExampleProviders_MetricsHandler() {
	ctx := context.Background()
	p, err := exporters.Setup(ctx, exporters.WithPrometheus(""), exporters.WithService("billing", ""), exporters.WithoutGlobal())
	if err != nil {
		log.Fatal(err)
	}
	defer p.Shutdown(ctx)
	sent, _ := p.MeterProvider.Meter("example").Int64Counter("orders.sent", metric.WithUnit("{message}"))
	sent.Add(ctx, 3)

	mux := http.NewServeMux()
	mux.Handle("/metrics", p.MetricsHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "orders_sent") {
			fmt.Println(sc.Text())
		}
	}
	// Output: orders_sent_total{otel_scope_name="example",otel_scope_schema_url="",otel_scope_version=""} 3
}

// The waterfall prints each trace once its root has ended. Here the spans
// are made by hand, with fixed times, as a test would.
func ExampleNewWaterfall() {
	ctx := context.Background()
	w := exporters.NewWaterfall(os.Stdout, &exporters.WaterfallOptions{BarWidth: 24, Linger: -1})

	start := time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)
	tid := trace.TraceID{0x4b, 0xf9, 0x2f, 0x35}
	sc := func(id byte, remote bool) trace.SpanContext {
		return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{id}, TraceFlags: trace.FlagsSampled, Remote: remote})
	}
	service := func(name string) *resource.Resource { return resource.NewSchemaless(semconv.ServiceName(name)) }
	spans := tracetest.SpanStubs{
		{Name: "send orders", SpanContext: sc(1, false), SpanKind: trace.SpanKindProducer,
			StartTime: start, EndTime: start.Add(400 * time.Microsecond), Resource: service("checkout")},
		{Name: "process orders", SpanContext: sc(2, false), Parent: sc(1, true), SpanKind: trace.SpanKindConsumer,
			StartTime: start.Add(time.Millisecond), EndTime: start.Add(7 * time.Millisecond), Resource: service("billing"),
			Status: sdktrace.Status{Code: codes.Error, Description: "card declined"}},
	}
	if err := w.ExportSpans(ctx, spans.Snapshots()); err != nil {
		log.Fatal(err)
	}
	// Output:
	// trace 4bf92f35000000000000000000000000 · 7.00ms · 2 spans · 2 services · 1 error
	//   send orders        checkout  producer  │█▍                      │       +0    400µs
	//   └─ process orders  billing   consumer  │   █████████████████████│  +1.00ms   6.00ms  ✗ card declined
}

// Shutdown's error says which exporter lost how many spans.
func ExampleNotExportedError() {
	var err error = &exporters.NotExportedError{Exporter: "otlp grpc", Lost: 12, Ended: 3400}
	var lost *exporters.NotExportedError
	if errors.As(err, &lost) {
		fmt.Printf("%s lost %d of %d spans\n", lost.Exporter, lost.Lost, lost.Ended)
	}
	fmt.Println(errors.Is(err, exporters.ErrNotExported))
	// Output:
	// otlp grpc lost 12 of 3400 spans
	// true
}
