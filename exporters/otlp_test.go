package exporters_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/messagingconv"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tracebus/tracebus/exporters"
	"github.com/tracebus/tracebus/testutil/otlptest"
)

// TestOTLP sends a span and a metric over each OTLP protocol, configured by
// option and by environment, to an in-process collector, and checks they
// arrive with the service's resource. Shutdown must flush both: nothing
// waits for a batch timer.
func TestOTLP(t *testing.T) {
	type start func(*testing.T) (*otlptest.Receiver, string)
	for _, tc := range []struct {
		name  string
		start start
		// configure returns the options, after setting the environment.
		configure func(t *testing.T, endpoint string) []exporters.Option
	}{
		{"grpc option", startGRPCReceiver, func(_ *testing.T, ep string) []exporters.Option {
			return []exporters.Option{exporters.WithOTLP(exporters.ProtocolGRPC, ep), exporters.WithService("checkout", "1.2.3")}
		}},
		{"http option", startHTTPReceiver, func(_ *testing.T, ep string) []exporters.Option {
			return []exporters.Option{exporters.WithOTLP(exporters.ProtocolHTTP, ep), exporters.WithService("checkout", "1.2.3")}
		}},
		{"grpc environment", startGRPCReceiver, func(t *testing.T, ep string) []exporters.Option {
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", ep)
			t.Setenv("OTEL_SERVICE_NAME", "checkout")
			t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "service.version=1.2.3")
			return nil
		}},
		{"http environment", startHTTPReceiver, func(t *testing.T, ep string) []exporters.Option {
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", ep)
			t.Setenv("OTEL_SERVICE_NAME", "checkout")
			t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "service.version=1.2.3")
			return nil
		}},
		{"grpc option wins over environment", startGRPCReceiver, func(t *testing.T, ep string) []exporters.Option {
			t.Setenv("OTEL_TRACES_EXPORTER", "console")
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+deadAddress(t))
			t.Setenv("OTEL_SERVICE_NAME", "from-env")
			return []exporters.Option{exporters.WithOTLP(exporters.ProtocolGRPC, ep), exporters.WithService("checkout", "1.2.3")}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rcv, endpoint := tc.start(t)
			opts := append(tc.configure(t, endpoint), exporters.WithoutGlobal(),
				exporters.WithAttributes(attribute.String("deployment.environment.name", "test")))
			ctx := context.Background()
			p, err := exporters.Setup(ctx, opts...)
			if err != nil {
				t.Fatal(err)
			}

			_, span := p.TracerProvider.Tracer("otlp-test").Start(ctx, "send orders",
				trace.WithSpanKind(trace.SpanKindProducer),
				trace.WithAttributes(semconv.MessagingSystemKafka, semconv.MessagingDestinationName("orders")))
			span.End()
			sent, err := messagingconv.NewClientSentMessages(p.MeterProvider.Meter("otlp-test"))
			if err != nil {
				t.Fatal(err)
			}
			sent.Add(ctx, 1, "send", messagingconv.SystemKafka)

			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := p.Shutdown(sctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}

			got, ok := rcv.Span("send orders")
			if !ok {
				t.Fatal("span did not reach the collector")
			}
			if got.GetKind() != tracepb.Span_SPAN_KIND_PRODUCER {
				t.Errorf("kind = %v, want PRODUCER", got.GetKind())
			}
			if tid := span.SpanContext().TraceID(); string(got.GetTraceId()) != string(tid[:]) {
				t.Errorf("trace id = %x, want %s", got.GetTraceId(), tid)
			}
			checkResource(t, got.Resource)

			m, ok := rcv.Metric("messaging.client.sent.messages")
			if !ok {
				t.Fatal("metric did not reach the collector")
			}
			checkResource(t, m.Resource)
		})
	}
}

func checkResource(t *testing.T, res map[string]string) {
	t.Helper()
	for k, want := range map[string]string{
		"service.name":                "checkout",
		"service.version":             "1.2.3",
		"deployment.environment.name": "test",
		"telemetry.sdk.language":      "go",
	} {
		if res[k] != want {
			t.Errorf("resource %s = %q, want %q", k, res[k], want)
		}
	}
	for _, k := range []string{"host.name", "process.pid", "process.runtime.version", "service.instance.id"} {
		if res[k] == "" {
			t.Errorf("resource lacks %s: %v", k, res)
		}
	}
	if _, leaked := res["process.command_args"]; leaked {
		t.Error("resource carries process.command_args")
	}
}

func TestInvalidOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  exporters.Option
	}{
		{"unknown protocol", exporters.WithOTLP("carrier-pigeon", "")},
		{"endpoint without scheme", exporters.WithOTLP(exporters.ProtocolGRPC, "localhost:4317")},
		{"endpoint with other scheme", exporters.WithOTLP(exporters.ProtocolHTTP, "ftp://collector")},
		{"nil exporter", exporters.WithSpanExporter(nil)},
		{"nil reader", exporters.WithMetricReader(nil)},
		{"nil propagator", exporters.WithPropagators(nil)},
		{"nil sampler", exporters.WithSampler(nil)},
		{"nil memory", exporters.WithMemory(nil, nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := exporters.Setup(context.Background(), tc.opt, exporters.WithoutGlobal())
			if !errors.Is(err, exporters.ErrInvalidOption) {
				t.Fatalf("err = %v, want ErrInvalidOption", err)
			}
			if p != nil {
				t.Fatal("Setup returned providers with an error")
			}
		})
	}
}
