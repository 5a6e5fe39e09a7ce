package exporters

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	promexporter "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// metricSetup is what Setup built for metrics.
type metricSetup struct {
	readers []sdkmetric.Reader
	built   []sdkmetric.Reader // the readers Setup made, not the caller's
	handler http.Handler
	server  *http.Server
	addr    net.Addr
}

// shutdownUnregistered releases the readers Setup made that never reached a
// MeterProvider (Setup failed later on) and stops the server. The caller's
// own readers are left alone.
func (m *metricSetup) shutdownUnregistered(ctx context.Context) {
	for _, r := range m.built {
		_ = r.Shutdown(ctx)
	}
	if m.server != nil {
		_ = m.server.Shutdown(ctx)
	}
}

// metricReaders builds the readers the options chose and, when metrics
// follow the environment (see Option), the one OTEL_METRICS_EXPORTER names.
// On error what was built is released.
func metricReaders(ctx context.Context, c *config) (*metricSetup, error) {
	m := &metricSetup{}
	if c.memory != nil {
		m.readers = append(m.readers, c.memory.metrics)
	}
	if c.fromEnv("METRICS", c.remoteMetrics()) {
		r, err := envMetricReader(ctx, c.log)
		if err != nil {
			return nil, fmt.Errorf("exporters: metric reader from OTEL_METRICS_EXPORTER: %w", err)
		}
		if r != nil {
			m.readers = append(m.readers, r)
			m.built = append(m.built, r)
		}
	}
	m.readers = append(m.readers, c.readers...)
	for _, t := range c.otlpMet {
		r, err := t.metricReader(ctx, c.log)
		if err != nil {
			m.shutdownUnregistered(ctx)
			return nil, fmt.Errorf("exporters: otlp %s metric exporter: %w", t.protocol, err)
		}
		m.readers = append(m.readers, r)
		m.built = append(m.built, r)
	}
	if c.prom {
		if err := m.addPrometheus(c.promAddr); err != nil {
			m.shutdownUnregistered(ctx)
			return nil, err
		}
	}
	return m, nil
}

// envMetricReader returns the reader OTEL_METRICS_EXPORTER names, nil for
// "none". OTLP (the default) is built here rather than by autoexport, so
// that a receiver without metrics is reported once instead of failing
// every export (see refusal); the rest comes from autoexport.
func envMetricReader(ctx context.Context, log *slog.Logger) (sdkmetric.Reader, error) {
	if name := os.Getenv("OTEL_METRICS_EXPORTER"); name == "" || name == "otlp" {
		if t, ok := envOTLPTarget("METRICS"); ok {
			return t.metricReader(ctx, log)
		}
	}
	r, err := autoexport.NewMetricReader(ctx)
	if err != nil || autoexport.IsNoneMetricReader(r) {
		return nil, err
	}
	return r, nil
}

// addPrometheus adds the Prometheus exporter on a registry of its own and,
// with an address, a server for it.
func (m *metricSetup) addPrometheus(addr string) error {
	reg := prometheus.NewRegistry()
	r, err := promexporter.New(
		promexporter.WithRegisterer(reg),
		// Spelled out because the exporter's default depends on a global of
		// prometheus/common/model: names must not change under our users
		// when some other package flips it.
		promexporter.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
	)
	if err != nil {
		return fmt.Errorf("exporters: Prometheus exporter: %w", err)
	}
	m.readers = append(m.readers, r)
	m.built = append(m.built, r)
	// OpenMetrics when the scraper asks for it (Prometheus does): the one
	// format that carries exemplars, which link histogram buckets to traces.
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
	if addr == "" {
		return nil
	}
	lis, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", addr)
	if err != nil {
		return fmt.Errorf("exporters: Prometheus server on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.handler)
	m.server = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	m.addr = lis.Addr()
	go func(s *http.Server) {
		if err := s.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			otel.Handle(fmt.Errorf("exporters: Prometheus server on %s stopped: %w", addr, err))
		}
	}(m.server)
	return nil
}
