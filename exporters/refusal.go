package exporters

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// refusal remembers that an OTLP receiver does not accept a signal.
//
// Tracing backends such as Jaeger and Tempo take OTLP traces and answer 404
// (HTTP) or Unimplemented (gRPC) for metrics and logs. Pointing a service
// at one must not make every metric export and the final Shutdown fail: the
// first refusal is reported once, as a warning, and the signal is no longer
// sent there. Any other export error is returned as usual.
type refusal struct {
	signal   string // "metrics" or "logs"
	endpoint string // where the exporter sends, for the warning
	log      *slog.Logger
	refused  atomic.Bool
}

// warned holds the receivers a refusal was reported for, so that several
// services of one process (the example runs three) warn once between them.
var warned sync.Map // signal + " " + endpoint → struct{}

// skip reports whether the receiver refused the signal before.
func (r *refusal) skip() bool { return r.refused.Load() }

// filter returns err, or nil when err says the receiver does not accept the
// signal, which it then reports once.
func (r *refusal) filter(err error) error {
	if err == nil || !notAccepted(err) {
		return err
	}
	if r.refused.CompareAndSwap(false, true) {
		if _, dup := warned.LoadOrStore(r.signal+" "+r.endpoint, struct{}{}); !dup {
			r.log.Warn("exporters: the OTLP receiver does not accept "+r.signal+"; they are not exported to it",
				slog.String("signal", r.signal), slog.String("endpoint", r.endpoint), slog.Any("error", err))
		}
	}
	return nil
}

// notAccepted reports whether err is a receiver's answer that it has no
// endpoint for the signal. The OTLP/HTTP exporters return such an answer
// as plain text ("failed to send metrics to URL: 404 Not Found (body:
// ...)"), hence the match on the status line; giving them an http.Client
// of our own to see the status code would make them ignore
// OTEL_EXPORTER_OTLP_CERTIFICATE and the other TLS settings.
func notAccepted(err error) bool {
	if s, ok := status.FromError(err); ok && s.Code() == codes.Unimplemented {
		return true
	}
	return strings.Contains(err.Error(), ": 404 Not Found")
}

// refusingMetricExporter is a metric exporter behind a refusal.
type refusingMetricExporter struct {
	sdkmetric.Exporter
	r *refusal
}

func (e *refusingMetricExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	if e.r.skip() {
		return nil
	}
	return e.r.filter(e.Exporter.Export(ctx, rm))
}

// refusingLogExporter is a log exporter behind a refusal.
type refusingLogExporter struct {
	sdklog.Exporter
	r *refusal
}

func (e *refusingLogExporter) Export(ctx context.Context, records []sdklog.Record) error {
	if e.r.skip() {
		return nil
	}
	return e.r.filter(e.Exporter.Export(ctx, records))
}
