package exporters

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Protocol is an OTLP transport, spelled as in OTEL_EXPORTER_OTLP_PROTOCOL.
type Protocol string

// The OTLP protocols.
const (
	// ProtocolGRPC is OTLP over gRPC, by default on port 4317.
	ProtocolGRPC Protocol = "grpc"
	// ProtocolHTTP is OTLP as protobuf over HTTP, by default on port 4318.
	ProtocolHTTP Protocol = "http/protobuf"
)

// otlpTarget is an explicit OTLP destination. An empty endpoint leaves the
// endpoint to OTEL_EXPORTER_OTLP_[SIGNAL_]ENDPOINT or the exporter default.
type otlpTarget struct {
	protocol Protocol
	endpoint *url.URL
}

// WithOTLP exports traces, metrics every OTEL_METRIC_EXPORT_INTERVAL (60 s
// by default) and the logs written through the OpenTelemetry logs API
// (Providers.LogHandler, the global LoggerProvider) over OTLP to a
// collector, Jaeger or Tempo. A receiver that takes traces only (Jaeger,
// Tempo) answers the metric and log exports with 404 or Unimplemented:
// that is reported once, as a warning to the logger (see WithLogger), and
// that signal is then no longer sent to it; Setup and Shutdown do not fail
// for it.
//
// To send one signal only, or each to another place, give the
// OpenTelemetry exporter of your choice to WithSpanExporter or
// WithMetricReader (otlptracegrpc.New, otlpmetrichttp.New, ...), or leave
// endpoint empty and set OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT.
//
// endpoint is the collector's base URL, as in OTEL_EXPORTER_OTLP_ENDPOINT:
// "http://localhost:4317" (plain text) or "https://otel.example.com:4318"
// (TLS). For HTTP the signal paths /v1/traces and /v1/metrics are appended.
// An empty endpoint keeps the one from the environment, or the default
// localhost:4317 (gRPC) or localhost:4318 (HTTP). Protocol and endpoint win
// over the environment; headers, timeouts, compression and certificates are
// still read from the OTEL_EXPORTER_OTLP_* variables.
func WithOTLP(protocol Protocol, endpoint string) Option {
	return optionFunc(func(c *config) {
		t, err := newOTLPTarget(protocol, endpoint)
		if err != nil {
			c.errs = append(c.errs, err)
			return
		}
		c.traces = append(c.traces, traceSpec{name: "otlp " + string(protocol), build: t.spanExporter})
		c.otlpMet = append(c.otlpMet, t)
		c.otlpLogs = append(c.otlpLogs, t)
	})
}

// envOTLPTarget is the OTLP target the environment configures for signal
// ("METRICS", "LOGS"): the protocol from OTEL_EXPORTER_OTLP_{signal}_PROTOCOL
// or OTEL_EXPORTER_OTLP_PROTOCOL (default http/protobuf, as autoexport), and
// no endpoint, so that the exporter reads the endpoint variables itself.
// ok is false for a protocol we do not build; autoexport then reports it.
func envOTLPTarget(signal string) (t *otlpTarget, ok bool) {
	p := os.Getenv("OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL")
	if p == "" {
		p = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch Protocol(p) {
	case "", ProtocolHTTP:
		return &otlpTarget{protocol: ProtocolHTTP}, true
	case ProtocolGRPC:
		return &otlpTarget{protocol: ProtocolGRPC}, true
	default:
		return nil, false
	}
}

// describe names where the target sends signal ("metrics", "logs"), for
// warnings: the URL, or the environment variable that decides it.
func (t *otlpTarget) describe(signal string) string {
	if t.endpoint == nil {
		for _, k := range []string{"OTEL_EXPORTER_OTLP_" + strings.ToUpper(signal) + "_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
			if v := os.Getenv(k); v != "" {
				return v
			}
		}
		return "the default " + string(t.protocol) + " endpoint"
	}
	if t.protocol == ProtocolGRPC {
		return t.endpoint.String()
	}
	return t.endpoint.JoinPath("v1", signal).String()
}

func newOTLPTarget(protocol Protocol, endpoint string) (*otlpTarget, error) {
	if protocol != ProtocolGRPC && protocol != ProtocolHTTP {
		return nil, fmt.Errorf("%w: OTLP protocol %q (want %q or %q)", ErrInvalidOption, protocol, ProtocolGRPC, ProtocolHTTP)
	}
	t := &otlpTarget{protocol: protocol}
	if endpoint == "" {
		return t, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: OTLP endpoint %q is not an http:// or https:// URL", ErrInvalidOption, endpoint)
	}
	t.endpoint = u
	return t, nil
}

func (t *otlpTarget) spanExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	if t.protocol == ProtocolGRPC {
		var opts []otlptracegrpc.Option
		if t.endpoint != nil {
			opts = append(opts, otlptracegrpc.WithEndpointURL(t.endpoint.String()))
		}
		return otlptracegrpc.New(ctx, opts...)
	}
	var opts []otlptracehttp.Option
	if t.endpoint != nil {
		opts = append(opts, otlptracehttp.WithEndpointURL(t.endpoint.JoinPath("v1/traces").String()))
	}
	return otlptracehttp.New(ctx, opts...)
}

func (t *otlpTarget) metricReader(ctx context.Context, log *slog.Logger) (sdkmetric.Reader, error) {
	var (
		exp sdkmetric.Exporter
		err error
	)
	if t.protocol == ProtocolGRPC {
		var opts []otlpmetricgrpc.Option
		if t.endpoint != nil {
			opts = append(opts, otlpmetricgrpc.WithEndpointURL(t.endpoint.String()))
		}
		exp, err = otlpmetricgrpc.New(ctx, opts...)
	} else {
		var opts []otlpmetrichttp.Option
		if t.endpoint != nil {
			opts = append(opts, otlpmetrichttp.WithEndpointURL(t.endpoint.JoinPath("v1/metrics").String()))
		}
		exp, err = otlpmetrichttp.New(ctx, opts...)
	}
	if err != nil {
		return nil, err
	}
	return sdkmetric.NewPeriodicReader(&refusingMetricExporter{
		Exporter: exp,
		r:        &refusal{signal: "metrics", endpoint: t.describe("metrics"), log: log},
	}), nil
}

func (t *otlpTarget) logExporter(ctx context.Context, log *slog.Logger) (sdklog.Exporter, error) {
	var (
		exp sdklog.Exporter
		err error
	)
	if t.protocol == ProtocolGRPC {
		var opts []otlploggrpc.Option
		if t.endpoint != nil {
			opts = append(opts, otlploggrpc.WithEndpointURL(t.endpoint.String()))
		}
		exp, err = otlploggrpc.New(ctx, opts...)
	} else {
		var opts []otlploghttp.Option
		if t.endpoint != nil {
			opts = append(opts, otlploghttp.WithEndpointURL(t.endpoint.JoinPath("v1/logs").String()))
		}
		exp, err = otlploghttp.New(ctx, opts...)
	}
	if err != nil {
		return nil, err
	}
	return &refusingLogExporter{
		Exporter: exp,
		r:        &refusal{signal: "logs", endpoint: t.describe("logs"), log: log},
	}, nil
}
