package exporters_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/tracebus/tracebus/exporters"
	"github.com/tracebus/tracebus/testutil/otlptest"
)

// A receiver that takes traces only (Jaeger, Tempo) costs one warning per
// refused signal, not a failed Shutdown; traces still arrive, and the
// refused signal is not sent again.
func TestReceiverWithoutMetricsOrLogs(t *testing.T) {
	for _, tc := range []struct {
		name     string
		protocol exporters.Protocol
		start    func(testing.TB, ...otlptest.Option) *otlptest.Receiver
	}{
		{"http", exporters.ProtocolHTTP, otlptest.StartHTTP},
		{"grpc", exporters.ProtocolGRPC, otlptest.StartGRPC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rcv := tc.start(t, otlptest.Refuse(otlptest.Metrics, otlptest.Logs))
			var out bytes.Buffer
			ctx := context.Background()
			p, err := exporters.Setup(ctx, exporters.WithoutGlobal(),
				exporters.WithOTLP(tc.protocol, rcv.URL),
				exporters.WithLogger(slog.New(slog.NewTextHandler(&out, nil))))
			if err != nil {
				t.Fatal(err)
			}
			_, span := p.TracerProvider.Tracer("t").Start(ctx, "send orders")
			span.End()
			counter, err := p.MeterProvider.Meter("t").Int64Counter("orders")
			if err != nil {
				t.Fatal(err)
			}
			counter.Add(ctx, 1, metric.WithAttributes())
			logger := slog.New(p.LogHandler("t", slog.LevelInfo))
			logger.InfoContext(ctx, "order placed")

			// Two rounds: the second must not ask the receiver again.
			if err := p.ForceFlush(ctx); err != nil {
				t.Fatalf("ForceFlush: %v", err)
			}
			counter.Add(ctx, 1)
			logger.InfoContext(ctx, "order placed")
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := p.Shutdown(sctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}

			if _, ok := rcv.Span("send orders"); !ok {
				t.Error("the span did not arrive")
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != 2 || !strings.Contains(lines[0], "level=WARN") ||
				!strings.Contains(out.String(), "does not accept metrics") || !strings.Contains(out.String(), "does not accept logs") {
				t.Errorf("want one warning for metrics and one for logs, got:\n%s", out.String())
			}
			if tc.protocol == exporters.ProtocolHTTP {
				if n := rcv.Refused(otlptest.Metrics); n != 1 {
					t.Errorf("metrics sent %d times, want once", n)
				}
				if n := rcv.Refused(otlptest.Logs); n != 1 {
					t.Errorf("logs sent %d times, want once", n)
				}
			}
		})
	}
}
