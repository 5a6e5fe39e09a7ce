// Command example runs four traced services in one process and prints
// their traces as a terminal waterfall:
//
//	checkout ──NATS JetStream "orders.created.eu"──▶ billing ──Kafka "invoices"──▶ shipping (batch consumer)
//	                                                   │ ▲
//	                                  NATS request/reply "fraud.check"
//	                                                   ▼ │
//	                                                  fraud
//
// Each service has its own service.name and version. Billing validates
// orders (one invalid order per run is dead-lettered), retries a transient
// failure, asks fraud over request/reply, charges the card in a span of its
// own and counts invoices with a custom counter. Metrics (Prometheus), the
// AsyncAPI document and health are served over HTTP while it runs (-http);
// -serve keeps it running until Ctrl-C.
//
// By default it starts an embedded NATS server and an in-process Kafka
// cluster, so it needs nothing installed:
//
//	go run ./example
//
// Point it at real servers and a tracing backend with flags:
//
//	go run ./example -nats nats://localhost:4222 -kafka localhost:9092 -otlp http://localhost:4318
//
// -timeout bounds the wait for every order to be shipped or dead-lettered
// (60s by default; slow real servers may need more): past it the run stops
// and exits with status 1.
//
// -otlp sends the spans and metrics to Jaeger, Tempo or a collector over
// OTLP/HTTP as well; a receiver that takes traces only (Jaeger, Tempo) costs
// one warning that metrics are not exported to it. Without -otlp the
// standard OTEL_* variables still apply on top of the waterfall: with
// OTEL_EXPORTER_OTLP_ENDPOINT set, the traces are printed and exported.
// When nothing listens at the endpoint, the run ends with one line naming
// it and exit status 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/tracebus/tracebus/broker"
)

func main() {
	var cfg config
	_ = commandLine(&cfg).Parse(os.Args[1:]) // ExitOnError: exits on a bad flag or -h
	cfg.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	slog.SetDefault(cfg.log)
	ctx, stop := broker.SignalContext(context.Background())
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
}

// commandLine returns the example's flags, which fill cfg.
func commandLine(cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet("example", flag.ExitOnError)
	fs.IntVar(&cfg.orders, "orders", 4, "how many orders checkout places")
	fs.StringVar(&cfg.natsURL, "nats", "", "NATS server URL; empty starts an embedded server")
	fs.StringVar(&cfg.kafka, "kafka", "", "comma-separated Kafka brokers; empty starts an in-process cluster")
	fs.StringVar(&cfg.otlp, "otlp", "", "OTLP/HTTP endpoint to export to as well, e.g. http://localhost:4318")
	fs.DurationVar(&cfg.timeout, "timeout", 60*time.Second, "how long to wait for every order to be shipped or dead-lettered before giving up with exit status 1")
	fs.StringVar(&cfg.http, "http", "127.0.0.1:0", "address to serve metrics, the AsyncAPI document and health on")
	fs.BoolVar(&cfg.serve, "serve", false, "keep running after the orders are through, until Ctrl-C (to explore Jaeger, Prometheus, AsyncAPI)")
	return fs
}

type config struct {
	orders  int
	natsURL string
	kafka   string
	otlp    string
	timeout time.Duration
	http    string
	serve   bool
	log     *slog.Logger // warnings, such as a receiver that takes no metrics
	// inspect, when set, is called with the HTTP base URL once the orders
	// are through, while everything still runs (tests look at the served
	// metrics, AsyncAPI document and health there).
	inspect func(base string) error
}

var errTimeout = errors.New("the flow did not finish in time")
