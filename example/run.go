package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
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
		exporters.WithServiceName(name),
		exporters.WithServiceVersion(version),
		exporters.WithoutGlobal(),
		exporters.WithSpanExporter(wf),
		exporters.WithPrometheus(),
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

func (s *service) broker(t broker.Transport) *broker.Broker {
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
	wf := exporters.NewWaterfall(w)
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
		var t broker.Transport
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
	for _, svc := range svcs {
		flush = append(flush, svc.providers.Shutdown)
	}
	app := broker.NewApp(broker.WithBrokers(brokers...), broker.ShutdownTelemetry(flush...),
		broker.WithShutdownTimeout(15*time.Second))
	defer func() {
		stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
		defer cancel()
		err = errors.Join(err, app.Stop(stop))
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
		fmt.Fprintln(out, "\nserving until Ctrl-C")
		<-ctx.Done()
	}
	fmt.Fprintln(out, "\ntraces:")
	return nil
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
		srv, err := natstest.Run()
		if err != nil {
			return "", nil, stop, fmt.Errorf("start embedded NATS: %w", err)
		}
		stops = append(stops, srv.Shutdown)
		natsURL = srv.URL()
	}
	kafkaOpts = []kafkabroker.Option{kafkabroker.WithAutoCreateTopics(3, 1)}
	if brokers := cfg.kafkaBrokers(); brokers != nil {
		kafkaOpts = append(kafkaOpts, kafkabroker.WithBrokers(brokers...))
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
	docs := asyncapi.New(asyncapi.WithTitle("tracebus example"), asyncapi.WithVersion("1.0.0"),
		asyncapi.WithDescription("Checkout, fraud, billing and shipping over NATS and Kafka."))
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
