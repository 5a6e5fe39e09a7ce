package middleware

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// Log attribute keys NewLogHandler adds.
const (
	logKeyTraceID = "trace_id"
	logKeySpanID  = "span_id"
)

// NewLogHandler wraps h so that a record logged with a ctx that holds a
// span (a handler's ctx holds its process span) gets the attributes
// trace_id and span_id, in the hex form trace views search by. Records
// logged without such a ctx pass unchanged. Give the logger to
// broker.WithLogger so that the broker's own lines carry them too:
//
//	logger := slog.New(middleware.NewLogHandler(slog.NewJSONHandler(os.Stderr, nil)))
//	b := broker.New(t, broker.WithLogger(logger), broker.WithMiddleware(middleware.NewTelemetry()))
//
// Like any attribute added while handling, they land in the group opened
// by WithGroup, if any. For the OpenTelemetry logs signal no wrapper is
// needed: exporters.Providers.LogHandler records the span of ctx itself.
func NewLogHandler(h slog.Handler) slog.Handler { return traceLogHandler{next: h} }

type traceLogHandler struct{ next slog.Handler }

func (h traceLogHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h traceLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		// A copy, so that handlers beside this one (slog.MultiHandler)
		// never see the added attributes through a shared array.
		r = r.Clone()
		r.AddAttrs(slog.String(logKeyTraceID, sc.TraceID().String()), slog.String(logKeySpanID, sc.SpanID().String()))
	}
	return h.next.Handle(ctx, r)
}

func (h traceLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceLogHandler{next: h.next.WithAttrs(attrs)}
}

func (h traceLogHandler) WithGroup(name string) slog.Handler {
	return traceLogHandler{next: h.next.WithGroup(name)}
}
