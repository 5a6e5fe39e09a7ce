package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"

	"github.com/tracebus/tracebus/baggage"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/asyncapi"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/exporters"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil/kafkatest"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// service is one traced service: its own OpenTelemetry providers (so the
// waterfall and Jaeger show which service a span belongs to), its
// telemetry middleware and a logger whose lines carry trace ids.
type service struct {
	name, version string
	providers     *exporters.Providers
	telemetry     *middleware.Telemetry
	log           *slog.Logger
}

func newService(ctx context.Context, name, version string, cfg config, wf *exporters.Waterfall, out io.Writer) (*service, error) {
	opts := []exporters.Option{
		exporters.WithService(name, version),
		exporters.WithoutGlobal(),
		exporters.WithSpanExporter(wf),
		exporters.WithPrometheus(""),
		// W3C trace context and baggage, and Jaeger's native formats for
		// services that still speak them.
		exporters.WithPropagators(propagation.NewCompositeTextMapPropagator(
			propagation.TraceContext{}, baggage.Propagator{}, baggage.JaegerPropagator{})),
	}
	if cfg.log != nil {
		opts = append(opts, exporters.WithLogger(cfg.log))
	}
	if cfg.otlp != "" {
		opts = append(opts, exporters.WithOTLP(exporters.ProtocolHTTP, cfg.otlp))
	}
	p, err := exporters.Setup(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("set up telemetry for %s: %w", name, err)
	}
	// Log lines go to the terminal with the trace and span ids of the
	// handler's ctx, and over the OpenTelemetry logs signal when
	// OTEL_LOGS_EXPORTER asks for it.
	text := slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: dropTime})
	log := slog.New(slog.NewMultiHandler(middleware.NewLogHandler(text), p.LogHandler("example/"+name, slog.LevelInfo))).
		With("service", name)
	return &service{
		name:      name,
		version:   version,
		providers: p,
		telemetry: middleware.NewTelemetry(
			middleware.WithTracerProvider(p.TracerProvider),
			middleware.WithMeterProvider(p.MeterProvider),
			middleware.WithPropagators(p.Propagator),
		),
		log: log,
	}, nil
}

// dropTime keeps the example's log lines short.
func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

func (s *service) broker(t driver.Transport) *broker.Broker {
	return broker.New(t, broker.WithMiddleware(s.telemetry), broker.WithLogger(s.log))
}

// run runs the four services over NATS and Kafka, places the orders,
// waits until every order is shipped or dead-lettered (or, with -serve,
// until ctx is done), then shuts down gracefully. It prints to w, which
// must be safe for concurrent writes of whole lines (os.Stdout is).
func run(ctx context.Context, cfg config, w io.Writer) (err error) {
	out := &lockedWriter{w: w}
	natsURL, kafkaOpts, stopServers, err := servers(cfg)
	if err != nil {
		return err
	}
	defer stopServers()

	// One waterfall for every service, so a trace prints as one tree.
	wf := exporters.NewWaterfall(w, nil)
	svcs := map[string]*service{}
	for _, s := range []struct{ name, version string }{
		{"checkout", "1.3.0"}, {"fraud", "0.9.2"}, {"billing", "2.1.0"}, {"shipping", "1.0.4"},
	} {
		svc, err := newService(ctx, s.name, s.version, cfg, wf, out)
		if err != nil {
			for _, done := range svcs {
				_ = done.providers.Shutdown(context.WithoutCancel(ctx))
			}
			return err
		}
		svcs[s.name] = svc
	}

	stream := natsbroker.WithStream(jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}, MaxAge: time.Hour})
	var brokers []*broker.Broker
	connect := func(svc *service, kafka bool) (*broker.Broker, error) {
		var t driver.Transport
		var err error
		if kafka {
			t, err = kafkabroker.New(append(kafkaOpts, kafkabroker.WithClientID(svc.name))...)
		} else {
			t, err = natsbroker.Connect(natsURL, stream, natsbroker.WithConnectOptions(natsgo.Name(svc.name)))
		}
		if err != nil {
			return nil, fmt.Errorf("%s: connect: %w", svc.name, err)
		}
		b := svc.broker(t)
		brokers = append(brokers, b)
		return b, nil
	}
	var shipped atomic.Int32
	wiring := func() (*Checkout, *Billing, error) {
		checkoutNATS, err := connect(svcs["checkout"], false)
		if err != nil {
			return nil, nil, err
		}
		fraudNATS, err := connect(svcs["fraud"], false)
		if err != nil {
			return nil, nil, err
		}
		billingNATS, err := connect(svcs["billing"], false)
		if err != nil {
			return nil, nil, err
		}
		billingKafka, err := connect(svcs["billing"], true)
		if err != nil {
			return nil, nil, err
		}
		shippingKafka, err := connect(svcs["shipping"], true)
		if err != nil {
			return nil, nil, err
		}
		bill := svcs["billing"]
		co := NewCheckout(checkoutNATS, svcs["checkout"].providers.TracerProvider, svcs["checkout"].log)
		if err := WireFraud(fraudNATS, svcs["fraud"].log); err != nil {
			return nil, nil, err
		}
		bl, err := WireBilling(billingNATS, billingKafka, bill.providers.TracerProvider, bill.providers.MeterProvider, bill.log, flakyOrder)
		if err != nil {
			return nil, nil, err
		}
		if err := WireShipping(shippingKafka, svcs["shipping"].log, func(n int) { shipped.Add(int32(n)) }); err != nil {
			return nil, nil, err
		}
		return co, bl, nil
	}
	co, bl, werr := wiring()

	// The app owns the brokers and the telemetry: it stops every broker
	// from taking messages, lets in-flight handlers finish (they publish
	// across brokers), closes the transports, then flushes the telemetry.
	var flush []func(context.Context) error
	var lost telemetryLoss
	for name, svc := range svcs {
		flush = append(flush, lost.shutdown(name, svc.providers.Shutdown))
	}
	app := broker.NewApp(broker.WithBrokers(brokers...), broker.WithTelemetryShutdown(flush...),
		broker.WithShutdownTimeout(15*time.Second))
	defer func() {
		stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
		defer cancel()
		err = errors.Join(err, app.Stop(stop), lost.err(cfg))
	}()
	if werr != nil {
		return werr
	}

	base, stopHTTP, err := serveHTTP(cfg, out, app, svcs, brokers)
	if err != nil {
		return err
	}
	defer stopHTTP()

	if err := app.Start(ctx); err != nil {
		return err
	}
	want, wantRejected := expected(cfg.orders)
	if err := placeOrders(ctx, co, cfg.orders); err != nil {
		return err
	}
	err = waitFor(ctx, cfg.timeout, func() bool {
		return int(shipped.Load()) >= want && bl.Rejected() >= wantRejected
	})
	if ctx.Err() != nil {
		fmt.Fprintln(out, "\ninterrupted: finishing in-flight work, flushing telemetry")
		return nil
	}
	if errors.Is(err, errTimeout) {
		return fmt.Errorf("%w: not every order was shipped or dead-lettered within %v (-timeout)", err, cfg.timeout)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n%d orders: %d shipped, %d dead-lettered; billing's invoice counter:\n", cfg.orders, want, wantRejected)
	printCounter(out, svcs["billing"].providers.MetricsHandler())
	if cfg.inspect != nil {
		if err := cfg.inspect(base); err != nil {
			return err
		}
	}
	if cfg.serve {
		// The waterfall prints each trace once it is complete, so by
		// Ctrl-C they have all been printed: no heading then.
		fmt.Fprintln(out, "\nserving until Ctrl-C; traces print as they complete")
		<-ctx.Done()
		return nil
	}
	fmt.Fprintln(out, "\ntraces:")
	return nil
}

// telemetryLoss collects the services whose telemetry could not be
// flushed at shutdown, so that an endpoint nobody listens on costs one
// line naming it, not one per service and signal.
type telemetryLoss struct {
	mu       sync.Mutex
	services []string
	first    error
}

// shutdown wraps a service's telemetry shutdown to record its failure.
func (l *telemetryLoss) shutdown(service string, fn func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := fn(ctx); err != nil {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.services = append(l.services, service)
			if l.first == nil {
				l.first = err
			}
		}
		return nil
	}
}

// err returns one error, on one line, for every service that lost
// telemetry: the endpoint, the services, the cause and a hint; nil when
// nothing was lost.
func (l *telemetryLoss) err(cfg config) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.services) == 0 {
		return nil
	}
	slices.Sort(l.services)
	endpoint := cfg.otlp
	if endpoint == "" {
		endpoint = cmp.Or(os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"), "the endpoints of the OTEL_* variables")
	}
	const hint = "is Jaeger, Tempo or a collector listening there? Fix -otlp or drop it"
	services := strings.Join(l.services, ", ")
	if op, ok := errors.AsType[*net.OpError](l.first); ok {
		return fmt.Errorf("telemetry of %s not exported to %s: %w (%s)", services, endpoint, op, hint)
	}
	cause, _, _ := strings.Cut(l.first.Error(), "\n")
	return fmt.Errorf("telemetry of %s not exported to %s: %s (%s)", services, endpoint, cause, hint)
}

// flakyOrder fails its first billing attempt with a transient error.
const flakyOrder = "order-2"

// invalidOrder does not validate and is dead-lettered.
const invalidOrder = 3

// expected returns how many of n orders are shipped and how many are
// dead-lettered.
func expected(n int) (shipped, rejected int) {
	if n >= invalidOrder {
		return n - 1, 1
	}
	return n, 0
}

// placeOrders is checkout's traffic: n orders of customers 41, 42, ...
func placeOrders(ctx context.Context, co *Checkout, n int) error {
	for i := 1; i <= n; i++ {
		o := Order{ID: fmt.Sprintf("order-%d", i), Customer: fmt.Sprintf("c-%d", 40+i), SKU: "book", Quantity: 1 + i%3, Total: 12.5 * float64(1+i%3)}
		if i == invalidOrder {
			o.Quantity = 0
		}
		if err := co.Place(ctx, o, fmt.Sprintf("u-%d", 40+i), fmt.Sprintf("s-%d", 900+i)); err != nil {
			return err
		}
	}
	return nil
}

func waitFor(ctx context.Context, timeout time.Duration, done func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !done() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return errTimeout
		case <-tick.C:
		}
	}
	return nil
}

// printCounter prints the billing.invoices series from a scrape of h.
func printCounter(w io.Writer, h http.Handler) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		if strings.HasPrefix(line, "billing_invoices") {
			fmt.Fprint(w, "  "+line)
		}
	}
}

// servers returns the NATS URL and Kafka options to use: the flags', or
// embedded servers'.
func servers(cfg config) (natsURL string, kafkaOpts []kafkabroker.Option, stop func(), err error) {
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	natsURL = cfg.natsURL
	if natsURL == "" {
		srv, err := natstest.Start()
		if err != nil {
			return "", nil, stop, fmt.Errorf("start embedded NATS: %w", err)
		}
		stops = append(stops, srv.Shutdown)
		natsURL = srv.URL()
	}
	kafkaOpts = []kafkabroker.Option{kafkabroker.WithAutoCreateTopics(3, 1)}
	if cfg.kafka != "" {
		// A comma-separated list, as Kafka's bootstrap.servers.
		kafkaOpts = append(kafkaOpts, kafkabroker.WithSeedBrokers(cfg.kafka))
	} else {
		cluster, err := kafkatest.Start()
		if err != nil {
			stop()
			return "", nil, func() {}, fmt.Errorf("start in-process Kafka: %w", err)
		}
		stops = append(stops, cluster.Close)
		kafkaOpts = append(kafkaOpts, cluster.TransportOptions()...)
	}
	return natsURL, kafkaOpts, stop, nil
}

// serveHTTP serves each service's Prometheus metrics, the AsyncAPI document
// of all of them and the app's health on cfg.http, and prints the URLs.
func serveHTTP(cfg config, out io.Writer, app *broker.App, svcs map[string]*service, brokers []*broker.Broker) (base string, stop func(), err error) {
	addr := cfg.http
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	base = "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	fmt.Fprintln(out, "serving on "+base)
	for _, name := range []string{"checkout", "fraud", "billing", "shipping"} {
		mux.Handle("/metrics/"+name, svcs[name].providers.MetricsHandler())
		fmt.Fprintf(out, "  metrics   %s/metrics/%s\n", base, name)
	}
	docs := asyncapi.New(asyncapi.WithInfo(asyncapi.Info{Title: "tracebus example", Version: "1.0.0",
		Description: "Checkout, fraud, billing and shipping over NATS and Kafka."}))
	mux.Handle("/asyncapi/", http.StripPrefix("/asyncapi", docs.Handler(brokers...)))
	mux.Handle("/livez", app.HealthHandler())
	mux.Handle("/readyz", app.HealthHandler())
	fmt.Fprintf(out, "  asyncapi  %s/asyncapi/\n  health    %s/livez %s/readyz\n\n", base, base, base)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ln) })
	return base, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		wg.Wait()
	}, nil
}

// lockedWriter serialises writes from concurrent handlers.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
