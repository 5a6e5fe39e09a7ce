package exporters

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// waterfallBatchTimeout is how long the batch processor in front of a
// Waterfall collects spans: short, because a person is waiting at the
// terminal, and still batched, because a terminal can block.
const waterfallBatchTimeout = 200 * time.Millisecond

// traceSpec is a span exporter: ready-made, or built by Setup because it
// needs the context (OTLP).
type traceSpec struct {
	name     string
	exporter sdktrace.SpanExporter
	build    func(context.Context) (sdktrace.SpanExporter, error)
	built    bool // Setup made the exporter, so Setup may release it
	local    bool // a local view (waterfall, JSON lines): adds to the environment
}

// isLocalView reports whether exp only shows spans where the program runs
// (the waterfall, the OpenTelemetry stdout exporter), so that it adds to
// the exporters the environment configures instead of replacing them.
func isLocalView(exp sdktrace.SpanExporter) bool {
	switch exp.(type) {
	case *Waterfall, *stdouttrace.Exporter:
		return true
	}
	return false
}

func exporterName(exp sdktrace.SpanExporter) string {
	switch exp.(type) {
	case *Waterfall:
		return "waterfall"
	case *stdouttrace.Exporter:
		return "json lines"
	}
	return fmt.Sprintf("%T", exp)
}

// spanExporters builds the exporters the options chose and, when traces
// follow the environment (see Option), the one OTEL_TRACES_EXPORTER names;
// nothing for "none". On error the exporters built so far are shut down.
func spanExporters(ctx context.Context, c *config) ([]traceSpec, error) {
	built := make([]traceSpec, 0, len(c.traces)+1)
	switch {
	case !c.fromEnv("TRACES", c.remoteTraces()):
	case strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER")) == "waterfall":
		// OTEL_TRACES_EXPORTER=waterfall prints traces on stderr, so a
		// service that calls Setup can be switched to the terminal view
		// without a rebuild. It is handled here rather than registered with
		// autoexport, whose registry is global: importing this package
		// changes nothing for other users of autoexport.
		built = append(built, traceSpec{name: "waterfall", exporter: NewWaterfall(os.Stderr, nil), built: true})
	default:
		exp, err := autoexport.NewSpanExporter(ctx)
		if err != nil {
			return nil, fmt.Errorf("exporters: span exporter from OTEL_TRACES_EXPORTER: %w", err)
		}
		if !autoexport.IsNoneSpanExporter(exp) {
			name := os.Getenv("OTEL_TRACES_EXPORTER")
			if name == "" {
				name = "otlp"
			}
			built = append(built, traceSpec{name: name, exporter: exp, built: true})
		}
	}
	for _, s := range c.traces {
		if s.exporter == nil {
			exp, err := s.build(ctx)
			if err != nil {
				shutdownSpecs(ctx, built)
				return nil, fmt.Errorf("exporters: %s span exporter: %w", s.name, err)
			}
			s.exporter, s.built = exp, true
		}
		built = append(built, s)
	}
	return built, nil
}

// shutdownSpecs releases the exporters Setup made when Setup fails; the
// caller's own exporters are left alone.
func shutdownSpecs(ctx context.Context, specs []traceSpec) {
	for _, s := range specs {
		if s.built {
			_ = s.exporter.Shutdown(ctx)
		}
	}
}

// pipeline is one exporter behind its span processor. It counts the spans
// it was given and the spans its exporter accepted, so that Shutdown can say
// what was lost, and it cancels exports still running when the shutdown
// deadline is near: without that, the batch processor keeps draining its
// queue against a dead collector long after Shutdown has returned.
type pipeline struct {
	sdktrace.SpanProcessor
	name string

	ended    atomic.Int64
	exported atomic.Int64

	mu      sync.Mutex
	lastErr error

	exp      *countingExporter
	abortCtx context.Context
	abort    context.CancelFunc
}

func newPipeline(s traceSpec, sync bool) *pipeline {
	p := &pipeline{name: s.name}
	p.abortCtx, p.abort = context.WithCancel(context.Background())
	exp := &countingExporter{SpanExporter: s.exporter, p: p}
	p.exp = exp
	_, waterfall := s.exporter.(*Waterfall)
	switch {
	case sync:
		p.SpanProcessor = sdktrace.NewSimpleSpanProcessor(exp)
	case waterfall:
		p.SpanProcessor = sdktrace.NewBatchSpanProcessor(exp, sdktrace.WithBatchTimeout(waterfallBatchTimeout))
	default:
		// The batch processor's defaults are what we want: a queue of
		// OTEL_BSP_MAX_QUEUE_SIZE (2048) spans that drops when full instead
		// of blocking the caller of span.End.
		p.SpanProcessor = sdktrace.NewBatchSpanProcessor(exp)
	}
	return p
}

// OnEnd counts the spans the processor will try to export: sampled ones.
func (p *pipeline) OnEnd(s sdktrace.ReadOnlySpan) {
	if s.SpanContext().IsSampled() {
		p.ended.Add(1)
	}
	p.SpanProcessor.OnEnd(s)
}

// lost reports the spans that ended but never reached the exporter, or that
// the exporter failed to send.
func (p *pipeline) lost() error {
	ended, exported := p.ended.Load(), p.exported.Load()
	if exported >= ended {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return &NotExportedError{Exporter: p.name, Lost: ended - exported, Ended: ended, Err: p.lastErr}
}

// countingExporter is the exporter side of a pipeline.
type countingExporter struct {
	sdktrace.SpanExporter
	p *pipeline
}

func (e *countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(e.p.abortCtx, cancel)
	defer stop()

	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err != nil {
		if errors.Is(err, context.Canceled) && e.p.abortCtx.Err() != nil {
			err = fmt.Errorf("aborted at the shutdown deadline: %w", err)
		}
		e.p.mu.Lock()
		e.p.lastErr = err
		e.p.mu.Unlock()
		return err
	}
	e.p.exported.Add(int64(len(spans)))
	return nil
}

// ForceFlush lets Providers.ForceFlush reach exporters that hold spans
// back, such as the Waterfall waiting for late children.
func (e *countingExporter) ForceFlush(ctx context.Context) error {
	if f, ok := e.SpanExporter.(interface{ ForceFlush(context.Context) error }); ok {
		return f.ForceFlush(ctx)
	}
	return nil
}
