package exporters_test

import (
	"context"
	"encoding/hex"
	"log/slog"
	"testing"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/exporters"
	"github.com/tracebus/tracebus/testutil/otlptest"
)

// A line logged in a handler through Providers.LogHandler reaches the OTLP
// log receiver with the trace and span id of the handler's process span,
// and so do the broker's lines about the delivery.
func TestHandlerLogReachesOTLPWithTraceID(t *testing.T) {
	rcv := otlptest.StartHTTP(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
	ctx := context.Background()
	p, err := exporters.Setup(ctx, exporters.WithoutGlobal(), exporters.WithService("billing", ""))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(p.LogHandler("billing", slog.LevelDebug))
	proc := handleOne(t, p, func(ctx context.Context) {
		logger.InfoContext(ctx, "charging card", "order", 7)
	}, broker.WithLogger(logger))
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

// LogHandler's level keeps the broker's per-message debug lines out of the
// export unless asked for.
func TestLogHandlerLevel(t *testing.T) {
	rcv := otlptest.StartHTTP(t)
	p, err := exporters.Setup(context.Background(), exporters.WithoutGlobal(), exporters.WithOTLP(exporters.ProtocolHTTP, rcv.URL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	ctx := context.Background()
	info := p.LogHandler("t", slog.LevelInfo).WithAttrs([]slog.Attr{slog.String("k", "v")}).WithGroup("g")
	if info.Enabled(ctx, slog.LevelDebug) || !info.Enabled(ctx, slog.LevelWarn) {
		t.Errorf("LevelInfo handler: debug enabled %v, warn enabled %v", info.Enabled(ctx, slog.LevelDebug), info.Enabled(ctx, slog.LevelWarn))
	}
	if !p.LogHandler("t", slog.LevelDebug).Enabled(ctx, slog.LevelDebug) {
		t.Error("LevelDebug handler drops debug records")
	}
}
