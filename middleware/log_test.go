package middleware_test

import (
	"context"
	"log/slog"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
)

// A line a handler logs, and the broker's own lines about the delivery,
// carry the trace and span id of the process span.
func TestLogHandlerAddsProcessSpan(t *testing.T) {
	tel, rec := newTel(t)
	var buf testutil.LogBuffer
	logger := slog.New(middleware.NewLogHandler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	b := broker.New(testutil.Memory(t), broker.WithMiddleware(tel), broker.WithLogger(logger))
	done := make(chan struct{})
	if err := b.Subscribe("orders", func(ctx context.Context, _ *broker.Message) error {
		logger.InfoContext(ctx, "charging card")
		close(done)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(t.Context(), &broker.Message{Destination: "orders", Body: []byte("7")}); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := b.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	logger.Info("outside any span")

	proc := rec.SpanByName(t, "process orders").SpanContext()
	seen := map[string]bool{}
	for _, r := range buf.Records(t) {
		msg := r["msg"].(string)
		seen[msg] = true
		if msg == "outside any span" {
			if _, ok := r["trace_id"]; ok {
				t.Errorf("line without a span got a trace id: %v", r)
			}
			continue
		}
		if r["trace_id"] != proc.TraceID().String() || r["span_id"] != proc.SpanID().String() {
			t.Errorf("line %v, want trace %s span %s", r, proc.TraceID(), proc.SpanID())
		}
	}
	for _, msg := range []string{"tracebus: received", "charging card", "tracebus: processed", "outside any span"} {
		if !seen[msg] {
			t.Errorf("no %q line", msg)
		}
	}
}

// The ids are added to a copy: a handler beside the wrapped one does not
// see them.
func TestLogHandlerLeavesSiblingsAlone(t *testing.T) {
	var wrapped, plain testutil.LogBuffer
	logger := slog.New(slog.NewMultiHandler(
		middleware.NewLogHandler(slog.NewJSONHandler(&wrapped, nil)),
		slog.NewJSONHandler(&plain, nil),
	)).With("service", "billing")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	// Enough attributes to spill out of a record's inline array.
	logger.InfoContext(trace.ContextWithSpanContext(context.Background(), sc), "m",
		"a", 1, "b", 2, "c", 3, "d", 4, "e", 5, "f", 6)
	if got := wrapped.Records(t)[0]["trace_id"]; got != sc.TraceID().String() {
		t.Errorf("wrapped handler: trace_id %v, want %s", got, sc.TraceID())
	}
	if got, ok := plain.Records(t)[0]["trace_id"]; ok {
		t.Errorf("sibling handler saw trace_id %v", got)
	}
}
