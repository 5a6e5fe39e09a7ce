package exporters_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/tracebus/tracebus/exporters"
)

// discard accepts every span and keeps none.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// BenchmarkSpan measures starting and ending a span on the path publish and
// consume take: Setup's pipeline (a counting processor and exporter around
// the SDK's batch processor) against the SDK's batch processor alone.
func BenchmarkSpan(b *testing.B) {
	ctx := context.Background()
	run := func(b *testing.B, tp *sdktrace.TracerProvider) {
		tracer := tp.Tracer("bench")
		b.ReportAllocs()
		for b.Loop() {
			_, span := tracer.Start(ctx, "send orders")
			span.End()
		}
		b.StopTimer()
		_ = tp.Shutdown(ctx)
	}
	b.Run("sdk batch processor", func(b *testing.B) {
		run(b, sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{})))
	})
	b.Run("exporters.Setup", func(b *testing.B) {
		p, err := exporters.Setup(ctx, exporters.WithSpanExporter(discard{}), exporters.WithoutGlobal())
		if err != nil {
			b.Fatal(err)
		}
		run(b, p.TracerProvider)
		_ = p.Shutdown(ctx)
	})
}
