package exporters

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Providers is the OpenTelemetry SDK that Setup built. Hand its fields to
// code that takes providers explicitly (middleware.NewTelemetry options, the
// testutil helpers) or rely on the globals Setup installed.
type Providers struct {
	// TracerProvider sends spans to the configured exporters.
	TracerProvider *sdktrace.TracerProvider
	// MeterProvider sends metrics to the configured readers.
	MeterProvider *sdkmetric.MeterProvider
	// LoggerProvider sends log records to the configured log exporters;
	// see LogHandler for logging through it with log/slog.
	LoggerProvider *sdklog.LoggerProvider
	// Propagator injects and extracts trace context and baggage.
	Propagator propagation.TextMapPropagator
	// Resource describes the service on every span and metric.
	Resource *resource.Resource

	pipelines []*pipeline
	metrics   *metricSetup

	once        sync.Once
	shutdownErr error
}

// Setup builds a tracer provider, a meter provider, a logger provider and a
// propagator for one service and, unless WithoutGlobal is given, installs them as the
// OpenTelemetry globals. Call Shutdown before the process exits, or the last
// spans and metrics are lost.
//
// With no options the standard OTEL_* environment decides everything,
// through autoexport and autoprop: OTLP over HTTP to localhost:4318 unless
// OTEL_TRACES_EXPORTER, OTEL_METRICS_EXPORTER, OTEL_LOGS_EXPORTER,
// OTEL_EXPORTER_OTLP_* say otherwise; W3C trace context and baggage unless OTEL_PROPAGATORS says
// otherwise. Options win over the environment (see Option).
//
// Spans are exported through batch processors with bounded queues: a
// collector that is slow or down costs dropped spans, never a blocked publish
// or consume, and memory stays bounded.
func Setup(ctx context.Context, opts ...Option) (*Providers, error) {
	c := newConfig(opts)
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}

	res, err := newResource(ctx, c)
	if err != nil {
		return nil, err
	}
	specs, err := spanExporters(ctx, c)
	if err != nil {
		return nil, err
	}
	ms, err := metricReaders(ctx, c)
	if err != nil {
		shutdownSpecs(ctx, specs)
		return nil, err
	}
	logExps, err := logExporters(ctx, c)
	if err != nil {
		shutdownSpecs(ctx, specs)
		ms.shutdownUnregistered(ctx)
		return nil, err
	}

	p := &Providers{Resource: res, metrics: ms}
	tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithRawSpanLimits(spanLimits())}
	if c.sampler != nil {
		tpOpts = append(tpOpts, sdktrace.WithSampler(c.sampler))
	}
	if c.memory != nil {
		tpOpts = append(tpOpts, sdktrace.WithSpanProcessor(c.memory.spans))
	}
	for _, s := range specs {
		pl := newPipeline(s, c.sync)
		p.pipelines = append(p.pipelines, pl)
		tpOpts = append(tpOpts, sdktrace.WithSpanProcessor(pl))
	}
	p.TracerProvider = sdktrace.NewTracerProvider(tpOpts...)

	mpOpts := []sdkmetric.Option{sdkmetric.WithResource(res)}
	for _, r := range ms.readers {
		mpOpts = append(mpOpts, sdkmetric.WithReader(r))
	}
	p.MeterProvider = sdkmetric.NewMeterProvider(mpOpts...)
	p.LoggerProvider = newLoggerProvider(res, logExps)

	if c.propagator != nil {
		p.Propagator = c.propagator
	} else {
		// OTEL_PROPAGATORS through autoprop (plus jaegerbaggage, and
		// tracebus's limit-respecting baggage propagator), or W3C trace
		// context plus that baggage propagator.
		p.Propagator = envPropagator()
	}

	if c.global {
		otel.SetTracerProvider(p.TracerProvider)
		otel.SetMeterProvider(p.MeterProvider)
		otel.SetTextMapPropagator(p.Propagator)
		otel.SetLoggerProvider(p.LoggerProvider)
	}
	return p, nil
}

// MetricsHandler returns the handler serving the metrics, to mount at
// /metrics: in the Prometheus text format, or in OpenMetrics when the
// scraper asks for it (Prometheus does), which adds exemplars: a histogram
// bucket or counter names the trace and span of a recent measurement made
// inside a sampled span, so a dashboard can jump from a slow bucket to a
// trace. It is nil unless WithPrometheus was given (with OTEL_METRICS_EXPORTER=prometheus,
// autoexport serves its own endpoint on OTEL_EXPORTER_PROMETHEUS_HOST:PORT).
func (p *Providers) MetricsHandler() http.Handler { return p.metrics.handler }

// MetricsAddr returns the address the server of WithPrometheus listens on,
// or nil without one.
func (p *Providers) MetricsAddr() net.Addr { return p.metrics.addr }

// ForceFlush exports the spans and metrics held so far, and prints the
// traces a Waterfall is still holding back for late spans.
func (p *Providers) ForceFlush(ctx context.Context) error {
	var errs []error
	if err := p.TracerProvider.ForceFlush(ctx); err != nil {
		errs = append(errs, fmt.Errorf("exporters: flush spans: %w", err))
	}
	for _, pl := range p.pipelines {
		if err := pl.exp.ForceFlush(ctx); err != nil {
			errs = append(errs, fmt.Errorf("exporters: flush %s: %w", pl.name, err))
		}
	}
	if err := p.MeterProvider.ForceFlush(ctx); err != nil {
		errs = append(errs, fmt.Errorf("exporters: flush metrics: %w", err))
	}
	if err := p.LoggerProvider.ForceFlush(ctx); err != nil {
		errs = append(errs, fmt.Errorf("exporters: flush logs: %w", err))
	}
	return errors.Join(errs...)
}

// Shutdown flushes what is queued and stops the exporters, readers and the
// Prometheus server, all at once, within ctx's deadline. It returns what it
// could not do, one wrapped error per component joined with errors.Join;
// spans that never reached their exporter are reported per exporter with
// ErrNotExported.
//
// Shortly before the deadline (a tenth of the time left, at most 200 ms)
// exports still in flight are cancelled, so that the exporters can close
// their connections and Shutdown returns by the deadline without leaving
// goroutines behind. Without a deadline Shutdown waits for the exporters'
// own timeouts (OTEL_EXPORTER_OTLP_TIMEOUT, OTEL_BSP_EXPORT_TIMEOUT).
//
// Only the first call does the work; later calls return its result.
func (p *Providers) Shutdown(ctx context.Context) error {
	p.once.Do(func() { p.shutdownErr = p.shutdown(ctx) })
	return p.shutdownErr
}

func (p *Providers) shutdown(ctx context.Context) error {
	soft, cancel := softDeadline(ctx)
	defer cancel()
	for _, pl := range p.pipelines {
		stop := context.AfterFunc(soft, pl.abort)
		defer stop()
	}

	var (
		wg                             sync.WaitGroup
		tpErr, mpErr, lpErr, serverErr error
	)
	wg.Go(func() {
		// The tracer provider gets the real deadline: the soft one has
		// already cut the exports short, and waiting until the processors
		// have unwound is what leaves no goroutine behind.
		if err := p.TracerProvider.Shutdown(ctx); err != nil {
			tpErr = fmt.Errorf("exporters: shut down tracer provider: %w", err)
		}
	})
	wg.Go(func() {
		if err := p.MeterProvider.Shutdown(soft); err != nil {
			mpErr = fmt.Errorf("exporters: shut down meter provider: %w", err)
		}
	})
	wg.Go(func() {
		if err := p.LoggerProvider.Shutdown(soft); err != nil {
			lpErr = fmt.Errorf("exporters: shut down logger provider: %w", err)
		}
	})
	if p.metrics.server != nil {
		wg.Go(func() {
			if err := p.metrics.server.Shutdown(soft); err != nil {
				serverErr = fmt.Errorf("exporters: stop Prometheus server on %s: %w", p.metrics.addr, err)
			}
		})
	}
	wg.Wait()

	errs := []error{tpErr}
	for _, pl := range p.pipelines {
		errs = append(errs, pl.lost())
	}
	errs = append(errs, mpErr, lpErr, serverErr)
	return errors.Join(errs...)
}

// softDeadline returns a context that ends a little before ctx's deadline,
// leaving the exporters time to close their connections.
func softDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	reserve := min(time.Until(deadline)/10, 200*time.Millisecond)
	return context.WithDeadline(ctx, deadline.Add(-reserve))
}
