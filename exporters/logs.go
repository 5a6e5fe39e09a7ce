package exporters

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
)

// logExporters builds the log exporters the options chose and, when logs
// follow the environment (see Option), the one OTEL_LOGS_EXPORTER names.
// On error the exporters built so far are shut down.
func logExporters(ctx context.Context, c *config) ([]sdklog.Exporter, error) {
	var exps []sdklog.Exporter
	release := func() {
		for _, e := range exps {
			_ = e.Shutdown(ctx)
		}
	}
	if c.fromEnv("LOGS", len(c.otlpLogs) > 0) {
		exp, err := envLogExporter(ctx, c.log)
		if err != nil {
			return nil, fmt.Errorf("exporters: log exporter from OTEL_LOGS_EXPORTER: %w", err)
		}
		if exp != nil {
			exps = append(exps, exp)
		}
	}
	for _, t := range c.otlpLogs {
		exp, err := t.logExporter(ctx, c.log)
		if err != nil {
			release()
			return nil, fmt.Errorf("exporters: otlp %s log exporter: %w", t.protocol, err)
		}
		exps = append(exps, exp)
	}
	return exps, nil
}

// envLogExporter returns the exporter OTEL_LOGS_EXPORTER names, nil for
// "none"; OTLP is built here for the same reason as in envMetricReader.
func envLogExporter(ctx context.Context, log *slog.Logger) (sdklog.Exporter, error) {
	if name := os.Getenv("OTEL_LOGS_EXPORTER"); name == "" || name == "otlp" {
		if t, ok := envOTLPTarget("LOGS"); ok {
			return t.logExporter(ctx, log)
		}
	}
	exp, err := autoexport.NewLogExporter(ctx)
	if err != nil || autoexport.IsNoneLogExporter(exp) {
		return nil, err
	}
	return exp, nil
}

// newLoggerProvider puts every exporter behind a batch processor, whose
// bounded queue (OTEL_BLRP_MAX_QUEUE_SIZE, 2048 records) drops records
// rather than blocking the code that logs.
func newLoggerProvider(res *resource.Resource, exps []sdklog.Exporter) *sdklog.LoggerProvider {
	opts := []sdklog.LoggerProviderOption{sdklog.WithResource(res)}
	for _, e := range exps {
		opts = append(opts, sdklog.WithProcessor(sdklog.NewBatchProcessor(e)))
	}
	return sdklog.NewLoggerProvider(opts...)
}

// LogHandler returns an slog.Handler that sends records of level and above
// to the log exporters through the otelslog bridge, under the
// instrumentation scope name (your package or service). A record logged
// with a ctx that holds a span, such as a handler's ctx, carries that
// span's trace and span id, so the backend shows the line in the trace.
// slog.LevelInfo keeps the broker's per-message debug lines
// ("tracebus: received", "tracebus: processed") out of the export;
// slog.LevelDebug sends them too.
//
// Combine it with a local handler through slog.NewMultiHandler, and give
// the logger to broker.WithLogger so that the broker's lines are exported
// as well:
//
//	logger := slog.New(slog.NewMultiHandler(
//		middleware.NewLogHandler(slog.NewTextHandler(os.Stderr, nil)),
//		p.LogHandler("billing", slog.LevelInfo),
//	))
func (p *Providers) LogHandler(name string, level slog.Leveler) slog.Handler {
	return leveled{Handler: otelslog.NewHandler(name, otelslog.WithLoggerProvider(p.LoggerProvider)), level: level}
}

// leveled drops records below level; the bridge itself exports every level.
type leveled struct {
	slog.Handler
	level slog.Leveler
}

func (h leveled) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level.Level() && h.Handler.Enabled(ctx, l)
}

func (h leveled) WithAttrs(attrs []slog.Attr) slog.Handler {
	return leveled{Handler: h.Handler.WithAttrs(attrs), level: h.level}
}

func (h leveled) WithGroup(name string) slog.Handler {
	return leveled{Handler: h.Handler.WithGroup(name), level: h.level}
}
