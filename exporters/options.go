package exporters

import (
	"fmt"
	"log/slog"
	"os"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// An Option configures Setup.
//
// The rule between options and the OTEL_* environment, one signal at a
// time: local views (WithMemory, and a Waterfall or the OpenTelemetry
// stdout exporter given to WithSpanExporter) add to what the environment
// configures, while explicit remote exporters (WithOTLP, WithPrometheus,
// WithMetricReader, any other WithSpanExporter) replace it.
//
// In detail: a signal without an explicit remote exporter follows the
// environment (OTEL_TRACES_EXPORTER, OTEL_METRICS_EXPORTER,
// OTEL_LOGS_EXPORTER) when the environment says anything about it (its
// exporter variable, OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_{SIGNAL}_ENDPOINT), or when no exporter option was
// given at all, which gives the OpenTelemetry default, OTLP. So Setup(ctx)
// exports all three signals over OTLP; Setup(ctx, WithSpanExporter(NewWaterfall(os.Stderr, nil)))
// only prints traces, instead of retrying a collector that a developer at a
// terminal does not run, until OTEL_EXPORTER_OTLP_ENDPOINT is set, and then
// prints them and exports all three signals there.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// config is what the options collect. Setup turns it into providers.
type config struct {
	serviceName    string
	serviceVersion string
	attrs          []attribute.KeyValue

	global     bool
	propagator propagation.TextMapPropagator
	sampler    sdktrace.Sampler
	sync       bool

	traces   []traceSpec
	memory   *memory
	readers  []sdkmetric.Reader
	otlpMet  []*otlpTarget
	otlpLogs []*otlpTarget
	prom     bool
	promAddr string

	// log receives warnings that do not stop the service.
	log *slog.Logger

	// errs collects invalid option values; Setup reports them all at once.
	errs []error
}

func newConfig(opts []Option) *config {
	c := &config{global: true, log: slog.Default()}
	for _, o := range opts {
		if o != nil {
			o.apply(c)
		}
	}
	return c
}

func (c *config) invalid(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...))
}

// remoteTraces reports whether an option chose a span exporter that is not
// a local view, so that the environment is not consulted for traces.
func (c *config) remoteTraces() bool {
	return slices.ContainsFunc(c.traces, func(s traceSpec) bool { return !s.local })
}

// remoteMetrics reports whether an option chose a metric exporter, so that
// OTEL_METRICS_EXPORTER is not consulted. Memory's reader is a local view.
func (c *config) remoteMetrics() bool {
	return len(c.readers) > 0 || len(c.otlpMet) > 0 || c.prom
}

// anyExporter reports whether an option chose an exporter of any kind for
// any signal.
func (c *config) anyExporter() bool {
	return len(c.traces) > 0 || c.memory != nil || c.remoteMetrics() || len(c.otlpLogs) > 0
}

// fromEnv reports whether the signal ("TRACES", "METRICS", "LOGS") follows
// the environment; remote says whether an option chose a remote exporter
// for it. See Option for the rule.
func (c *config) fromEnv(signal string, remote bool) bool {
	if remote {
		return false
	}
	if !c.anyExporter() {
		return true
	}
	for _, k := range []string{"OTEL_" + signal + "_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_" + signal + "_ENDPOINT"} {
		if os.Getenv(k) != "" {
			return true
		}
	}
	return false
}

// WithLogger sets the logger for problems that do not stop the service,
// such as an OTLP receiver that does not accept metrics or logs. The
// default is slog.Default() at the time Setup is called.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l == nil {
			c.invalid("nil logger")
			return
		}
		c.log = l
	})
}

// WithService sets the service.name and service.version resource
// attributes. Each wins over OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES;
// an empty value leaves that attribute to the environment. Without a name
// anywhere, the OpenTelemetry default "unknown_service:<executable>" is used.
func WithService(name, version string) Option {
	return optionFunc(func(c *config) { c.serviceName, c.serviceVersion = name, version })
}

// WithAttributes adds resource attributes, such as
// semconv.DeploymentEnvironmentName("prod"). They win over
// OTEL_RESOURCE_ATTRIBUTES and the detected host and process attributes.
func WithAttributes(attrs ...attribute.KeyValue) Option {
	return optionFunc(func(c *config) { c.attrs = append(c.attrs, attrs...) })
}

// WithoutGlobal keeps Setup from installing the providers and the propagator
// as the OpenTelemetry globals. Use the fields of Providers instead; tests
// running side by side want this.
func WithoutGlobal() Option {
	return optionFunc(func(c *config) { c.global = false })
}

// WithPropagators sets the propagator, ignoring OTEL_PROPAGATORS. Without it
// the propagator comes from autoprop: OTEL_PROPAGATORS (tracecontext,
// baggage, b3, b3multi, jaeger, jaegerbaggage, xray, ottrace, none), or
// W3C trace context plus baggage when the variable is unset. "baggage" is
// tracebus's baggage.Propagator, which cuts baggage over the W3C limits
// deterministically and reports the cut, where otel-go's drops it whole.
func WithPropagators(p propagation.TextMapPropagator) Option {
	return optionFunc(func(c *config) {
		if p == nil {
			c.invalid("nil propagator")
			return
		}
		c.propagator = p
	})
}

// WithSampler sets the sampler, ignoring OTEL_TRACES_SAMPLER. Without it the
// SDK reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG, and samples
// everything that is not sampled out by a remote parent when they are unset.
func WithSampler(s sdktrace.Sampler) Option {
	return optionFunc(func(c *config) {
		if s == nil {
			c.invalid("nil sampler")
			return
		}
		c.sampler = s
	})
}

// withSynchronousExport exports every span as it ends, on the goroutine that
// ends it, instead of through a bounded batch queue, for tests that read an
// exporter's output right after ending a span. Not offered to services: a
// slow or dead collector would then block every publish and consume.
func withSynchronousExport() Option {
	return optionFunc(func(c *config) { c.sync = true })
}

// WithSpanExporter adds a span exporter of your own. Like every exporter
// Setup builds, it sits behind a batch processor with a bounded queue, so a
// slow exporter drops spans instead of blocking the code that ends them.
// Setup's Shutdown shuts it down. A Waterfall and the OpenTelemetry stdout
// exporter count as local views (see Option): the waterfall for a terminal,
// stdouttrace for one span per line of JSON to any io.Writer, to pipe into
// jq or a store of your own:
//
//	exporters.Setup(ctx, exporters.WithSpanExporter(exporters.NewWaterfall(os.Stderr, nil)))
//	exp, err := stdouttrace.New(stdouttrace.WithWriter(w))
//	exporters.Setup(ctx, exporters.WithSpanExporter(exp))
func WithSpanExporter(exp sdktrace.SpanExporter) Option {
	return optionFunc(func(c *config) {
		if exp == nil {
			c.invalid("nil span exporter")
			return
		}
		c.traces = append(c.traces, traceSpec{name: exporterName(exp), exporter: exp, local: isLocalView(exp)})
	})
}

// memory is what WithMemory was given.
type memory struct {
	spans   *tracetest.SpanRecorder
	metrics *sdkmetric.ManualReader
}

// WithMemory records telemetry in memory for tests, instead of exporting
// it: every span into spans, synchronously as it starts and ends, and
// metrics into metrics, which collects them on demand. They are the SDK's
// own recorder and reader (tracetest.NewSpanRecorder,
// sdkmetric.NewManualReader), as in testutil.Recorder, which tests that do
// not need Setup use instead. A manual reader belongs to one Setup.
func WithMemory(spans *tracetest.SpanRecorder, metrics *sdkmetric.ManualReader) Option {
	return optionFunc(func(c *config) {
		if spans == nil || metrics == nil {
			c.invalid("WithMemory needs a span recorder and a manual reader")
			return
		}
		if c.memory != nil {
			c.invalid("WithMemory given twice")
			return
		}
		c.memory = &memory{spans: spans, metrics: metrics}
	})
}

// WithMetricReader adds a metric reader of your own, such as
// sdkmetric.NewPeriodicReader around an exporter. Setup's Shutdown shuts it
// down.
func WithMetricReader(r sdkmetric.Reader) Option {
	return optionFunc(func(c *config) {
		if r == nil {
			c.invalid("nil metric reader")
			return
		}
		c.readers = append(c.readers, r)
	})
}

// WithPrometheus exposes the metrics in the Prometheus text format through
// Providers.MetricsHandler, to mount on a server of your own at /metrics,
// and, unless addr is empty, also serves that handler at /metrics on an
// HTTP server on addr (for example ":9464"). Setup fails if addr cannot be
// bound; Shutdown stops the server. Providers.MetricsAddr reports the bound
// address, which helps with ":0". The exporter uses a registry of its own,
// not prometheus.DefaultRegisterer, and Prometheus names with unit
// suffixes: messaging.client.operation.duration becomes
// messaging_client_operation_duration_seconds.
func WithPrometheus(addr string) Option {
	return optionFunc(func(c *config) {
		c.prom = true
		c.promAddr = addr
	})
}
