package exporters_test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/exporters"
	"github.com/tracebus/tracebus/testutil/otlptest"
)

// injected returns the header keys p's propagator writes for a sampled span
// context carrying baggage-free state.
func injected(p *exporters.Providers) []string {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID(0x10), SpanID: spanID(1), TraceFlags: trace.FlagsSampled,
	})
	carrier := propagation.MapCarrier{}
	p.Propagator.Inject(trace.ContextWithSpanContext(context.Background(), sc), carrier)
	return slices.Sorted(maps.Keys(carrier))
}

func resourceValue(p *exporters.Providers, key string) string {
	v, _ := p.Resource.Set().Value(attribute.Key(key))
	return v.String()
}

// TestEnvironment checks that the OTEL_* variables reach the SDK through
// autoexport, autoprop and the resource detectors, and that options win.
func TestEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		opts []exporters.Option
		// exporters: let the environment and opts choose the exporters;
		// otherwise memory takes both signals.
		exporters bool
		check     func(t *testing.T, p *exporters.Providers, spans *tracetest.SpanRecorder)
	}{
		{
			name: "OTEL_SERVICE_NAME",
			env:  map[string]string{"OTEL_SERVICE_NAME": "from-env"},
			check: func(t *testing.T, p *exporters.Providers, _ *tracetest.SpanRecorder) {
				wantEqual(t, "service.name", resourceValue(p, "service.name"), "from-env")
			},
		},
		{
			name: "WithService wins over OTEL_SERVICE_NAME",
			env:  map[string]string{"OTEL_SERVICE_NAME": "from-env"},
			opts: []exporters.Option{exporters.WithService("explicit", "")},
			check: func(t *testing.T, p *exporters.Providers, _ *tracetest.SpanRecorder) {
				wantEqual(t, "service.name", resourceValue(p, "service.name"), "explicit")
			},
		},
		{
			name: "no service name anywhere",
			check: func(t *testing.T, p *exporters.Providers, _ *tracetest.SpanRecorder) {
				if got := resourceValue(p, "service.name"); !strings.HasPrefix(got, "unknown_service:") {
					t.Errorf("service.name = %q, want the SDK default unknown_service:<executable>", got)
				}
			},
		},
		{
			name: "OTEL_RESOURCE_ATTRIBUTES, service.version overridden",
			env:  map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=staging,service.version=0.9,team=payments"},
			opts: []exporters.Option{exporters.WithService("", "1.0.0")},
			check: func(t *testing.T, p *exporters.Providers, _ *tracetest.SpanRecorder) {
				wantEqual(t, "deployment.environment.name", resourceValue(p, "deployment.environment.name"), "staging")
				wantEqual(t, "team", resourceValue(p, "team"), "payments")
				wantEqual(t, "service.version", resourceValue(p, "service.version"), "1.0.0")
			},
		},
		{
			name: "malformed OTEL_RESOURCE_ATTRIBUTES keeps the valid pairs",
			env:  map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "team=payments,garbage"},
			check: func(t *testing.T, p *exporters.Providers, _ *tracetest.SpanRecorder) {
				wantEqual(t, "team", resourceValue(p, "team"), "payments")
				if resourceValue(p, "host.name") == "" {
					t.Error("host.name lost with a malformed OTEL_RESOURCE_ATTRIBUTES")
				}
			},
		},
		{
			name: "default propagators: tracecontext and baggage",
			check: func(t *testing.T, p *exporters.Providers, _ *tracetest.SpanRecorder) {
				wantFields(t, p, "baggage", "traceparent", "tracestate")
			},
		},
		{
			name: "OTEL_PROPAGATORS=jaeger",
			env:  map[string]string{"OTEL_PROPAGATORS": "jaeger"},
			check: func(t *testing.T, p *exporters.Providers, _ *tracetest.SpanRecorder) {
				wantHeaders(t, p, "uber-trace-id")
			},
		},
		{
			name:  "OTEL_PROPAGATORS=b3",
			env:   map[string]string{"OTEL_PROPAGATORS": "b3"},
			check: func(t *testing.T, p *exporters.Providers, _ *tracetest.SpanRecorder) { wantHeaders(t, p, "b3") },
		},
		{
			name: "OTEL_PROPAGATORS=b3multi",
			env:  map[string]string{"OTEL_PROPAGATORS": "b3multi"},
			check: func(t *testing.T, p *exporters.Providers, _ *tracetest.SpanRecorder) {
				wantHeaders(t, p, "x-b3-sampled", "x-b3-spanid", "x-b3-traceid")
			},
		},
		{
			name: "OTEL_PROPAGATORS=tracecontext,jaeger",
			env:  map[string]string{"OTEL_PROPAGATORS": "tracecontext,jaeger"},
			check: func(t *testing.T, p *exporters.Providers, _ *tracetest.SpanRecorder) {
				wantHeaders(t, p, "traceparent", "uber-trace-id")
			},
		},
		{
			name: "WithPropagators wins over OTEL_PROPAGATORS",
			env:  map[string]string{"OTEL_PROPAGATORS": "jaeger"},
			opts: []exporters.Option{exporters.WithPropagators(propagation.TraceContext{})},
			check: func(t *testing.T, p *exporters.Providers, _ *tracetest.SpanRecorder) {
				wantHeaders(t, p, "traceparent")
			},
		},
		{
			name:      "OTEL_TRACES_EXPORTER=waterfall",
			exporters: true,
			env:       map[string]string{"OTEL_TRACES_EXPORTER": "waterfall", "OTEL_METRICS_EXPORTER": "none"},
			check: func(t *testing.T, p *exporters.Providers, _ *tracetest.SpanRecorder) {
				wantEqual(t, "span exporters", fmt.Sprint(exporters.PipelineNames(p)), "[waterfall]")
				wantEqual(t, "metric readers", fmt.Sprint(exporters.MetricReaderCount(p)), "0")
			},
		},
		{
			name:      "OTEL_TRACES_EXPORTER=none",
			exporters: true,
			env:       map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"},
			check: func(t *testing.T, p *exporters.Providers, _ *tracetest.SpanRecorder) {
				wantEqual(t, "span exporters", fmt.Sprint(exporters.PipelineNames(p)), "[]")
			},
		},
		{
			name:      "OTEL_TRACES_EXPORTER=otlp with OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc",
			exporters: true,
			env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
				"OTEL_METRICS_EXPORTER": "none"},
			check: func(t *testing.T, p *exporters.Providers, _ *tracetest.SpanRecorder) {
				wantEqual(t, "span exporters", fmt.Sprint(exporters.PipelineNames(p)), "[otlp]")
			},
		},
		{
			name:      "a remote exporter option replaces OTEL_TRACES_EXPORTER",
			exporters: true,
			env:       map[string]string{"OTEL_TRACES_EXPORTER": "console"},
			opts:      []exporters.Option{exporters.WithOTLP(exporters.ProtocolGRPC, otlptest.StartGRPC(t).URL)},
			check: func(t *testing.T, p *exporters.Providers, _ *tracetest.SpanRecorder) {
				wantEqual(t, "span exporters", fmt.Sprint(exporters.PipelineNames(p)), "[otlp grpc]")
			},
		},
		{
			name:      "a local view adds to OTEL_TRACES_EXPORTER",
			exporters: true,
			env:       map[string]string{"OTEL_TRACES_EXPORTER": "console"},
			opts:      []exporters.Option{exporters.WithSpanExporter(jsonLines(t, io.Discard))},
			check: func(t *testing.T, p *exporters.Providers, _ *tracetest.SpanRecorder) {
				wantEqual(t, "span exporters", fmt.Sprint(exporters.PipelineNames(p)), "[console json lines]")
			},
		},
		{
			name:      "a waterfall given as a span exporter is a local view too",
			exporters: true,
			env:       map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": otlptest.StartHTTP(t).URL},
			opts:      []exporters.Option{exporters.WithSpanExporter(exporters.NewWaterfall(io.Discard, nil))},
			check: func(t *testing.T, p *exporters.Providers, _ *tracetest.SpanRecorder) {
				wantEqual(t, "span exporters", fmt.Sprint(exporters.PipelineNames(p)), "[otlp waterfall]")
				wantEqual(t, "metric readers", fmt.Sprint(exporters.MetricReaderCount(p)), "1")
			},
		},
		{
			name:      "a trace option alone leaves metrics off, not on an absent collector",
			exporters: true,
			opts:      []exporters.Option{exporters.WithSpanExporter(exporters.NewWaterfall(io.Discard, nil))},
			check: func(t *testing.T, p *exporters.Providers, _ *tracetest.SpanRecorder) {
				wantEqual(t, "metric readers", fmt.Sprint(exporters.MetricReaderCount(p)), "0")
			},
		},
		{
			name:      "a trace option with OTEL_METRICS_EXPORTER set follows the variable",
			exporters: true,
			env: map[string]string{"OTEL_METRICS_EXPORTER": "prometheus",
				"OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1", "OTEL_EXPORTER_PROMETHEUS_PORT": "0"},
			opts: []exporters.Option{exporters.WithSpanExporter(exporters.NewWaterfall(io.Discard, nil))},
			check: func(t *testing.T, p *exporters.Providers, _ *tracetest.SpanRecorder) {
				wantEqual(t, "metric readers", fmt.Sprint(exporters.MetricReaderCount(p)), "1")
			},
		},
		{
			name:      "a metric option alone leaves traces off",
			exporters: true,
			opts:      []exporters.Option{exporters.WithPrometheus("")},
			check: func(t *testing.T, p *exporters.Providers, _ *tracetest.SpanRecorder) {
				wantEqual(t, "span exporters", fmt.Sprint(exporters.PipelineNames(p)), "[]")
			},
		},
		{
			name: "OTEL_TRACES_SAMPLER=always_off",
			env:  map[string]string{"OTEL_TRACES_SAMPLER": "always_off"},
			check: func(t *testing.T, p *exporters.Providers, spans *tracetest.SpanRecorder) {
				_, span := p.TracerProvider.Tracer("t").Start(context.Background(), "dropped")
				span.End()
				wantEqual(t, "recorded spans", fmt.Sprint(len(spans.Ended())), "0")
			},
		},
		{
			name: "WithSampler wins over OTEL_TRACES_SAMPLER",
			env:  map[string]string{"OTEL_TRACES_SAMPLER": "always_off"},
			opts: []exporters.Option{exporters.WithSampler(sdktrace.AlwaysSample())},
			check: func(t *testing.T, p *exporters.Providers, spans *tracetest.SpanRecorder) {
				_, span := p.TracerProvider.Tracer("t").Start(context.Background(), "kept")
				span.End()
				wantEqual(t, "recorded spans", fmt.Sprint(len(spans.Ended())), "1")
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			spans := tracetest.NewSpanRecorder()
			opts := append([]exporters.Option{exporters.WithoutGlobal()}, tc.opts...)
			if !tc.exporters {
				opts = append(opts, exporters.WithMemory(spans, sdkmetric.NewManualReader()))
			}
			p, err := exporters.Setup(context.Background(), opts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := p.Shutdown(context.Background()); err != nil {
					t.Errorf("Shutdown: %v", err)
				}
			})
			tc.check(t, p, spans)
		})
	}
}

// TestEnvironmentPrometheus scrapes the server autoexport starts for
// OTEL_METRICS_EXPORTER=prometheus.
func TestEnvironmentPrometheus(t *testing.T) {
	addr := deadAddress(t)
	host, port, _ := strings.Cut(addr, ":")
	t.Setenv("OTEL_METRICS_EXPORTER", "prometheus")
	t.Setenv("OTEL_EXPORTER_PROMETHEUS_HOST", host)
	t.Setenv("OTEL_EXPORTER_PROMETHEUS_PORT", port)
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	p, err := exporters.Setup(context.Background(), exporters.WithoutGlobal())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := p.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}()
	recordMessaging(t, p.MeterProvider)
	family(t, scrape(t, "http://"+addr+"/metrics"), "messaging_client_operation_duration_seconds", dto.MetricType_HISTOGRAM)
}

func TestEnvironmentInvalid(t *testing.T) {
	for _, tc := range []struct{ key, value string }{
		{"OTEL_TRACES_EXPORTER", "zipkin"},
		{"OTEL_METRICS_EXPORTER", "statsd"},
		{"OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"},
	} {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			t.Setenv(tc.key, tc.value)
			p, err := exporters.Setup(context.Background(), exporters.WithoutGlobal())
			if err == nil {
				_ = p.Shutdown(context.Background())
				t.Fatalf("Setup accepted %s=%s", tc.key, tc.value)
			}
		})
	}
}

func wantEqual(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func wantHeaders(t *testing.T, p *exporters.Providers, keys ...string) {
	t.Helper()
	wantEqual(t, "injected headers", fmt.Sprint(injected(p)), fmt.Sprint(keys))
}

// wantFields checks the propagator's declared fields, for propagators such
// as tracestate and baggage that inject nothing from an empty context.
func wantFields(t *testing.T, p *exporters.Providers, keys ...string) {
	t.Helper()
	wantEqual(t, "propagator fields", fmt.Sprint(slices.Sorted(slices.Values(p.Propagator.Fields()))), fmt.Sprint(keys))
}
