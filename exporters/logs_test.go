package exporters_test

import (
	"context"
	"encoding/hex"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/memory"
	"github.com/tracebus/tracebus/exporters"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil/otlptest"
)

// A line logged in a handler through Providers.LogHandler reaches the OTLP
// log receiver with the trace and span id of the handler's process span,
// and so do the broker's lines about the delivery.
func TestHandlerLogReachesOTLPWithTraceID(t *testing.T) {
	rcv := otlptest.StartHTTP(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
	ctx := context.Background()
	p, err := exporters.Setup(ctx, exporters.WithoutGlobal(), exporters.WithServiceName("billing"))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(p.LogHandler("billing", slog.LevelDebug))
	tel := middleware.NewTelemetry(middleware.WithTracerProvider(p.TracerProvider), middleware.WithMeterProvider(p.MeterProvider))
	b := broker.New(memory.New(), broker.WithMiddleware(tel), broker.WithLogger(logger))
	spans := make(chan trace.SpanContext, 1)
	if err := b.Subscribe("orders", func(ctx context.Context, _ *broker.Message) error {
		logger.InfoContext(ctx, "charging card", "order", 7)
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
	proc := <-spans
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	bodies := map[string]otlptest.LogRecord{}
	for _, r := range rcv.Logs() {
		bodies[r.GetBody().GetStringValue()] = r
	}
	for _, msg := range []string{"charging card", "tracebus: received", "tracebus: processed"} {
		r, ok := bodies[msg]
		if !ok {
			t.Errorf("%q did not reach the receiver (got %d records)", msg, len(bodies))
			continue
		}
		if got := hex.EncodeToString(r.GetTraceId()); got != proc.TraceID().String() {
			t.Errorf("%q: trace id %s, want the process span's %s", msg, got, proc.TraceID())
		}
		if got := hex.EncodeToString(r.GetSpanId()); got != proc.SpanID().String() {
			t.Errorf("%q: span id %s, want the process span's %s", msg, got, proc.SpanID())
		}
		if r.Resource["service.name"] != "billing" {
			t.Errorf("%q: resource %v, want service.name billing", msg, r.Resource)
		}
	}
	if _, ok := rcv.Span("process orders"); !ok {
		t.Error("the process span did not reach the receiver")
	}
}
