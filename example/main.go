// Command example runs three traced services in one process and prints
// their traces as a terminal waterfall:
//
//	checkout ──NATS JetStream "orders.created.eu"──▶ billing ──Kafka "invoices"──▶ shipping (batch consumer)
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
// -otlp sends the spans and metrics to Jaeger, Tempo or a collector over
// OTLP/HTTP as well; a receiver that takes traces only (Jaeger, Tempo) costs
// one warning that metrics are not exported to it. Without -otlp the
// standard OTEL_* variables still apply on top of the waterfall: with
// OTEL_EXPORTER_OTLP_ENDPOINT set, the traces are printed and exported.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"
)

func main() {
	var cfg config
	flag.IntVar(&cfg.orders, "orders", 4, "how many orders checkout places")
	flag.StringVar(&cfg.natsURL, "nats", "", "NATS server URL; empty starts an embedded server")
	flag.StringVar(&cfg.kafka, "kafka", "", "comma-separated Kafka brokers; empty starts an in-process cluster")
	flag.StringVar(&cfg.otlp, "otlp", "", "OTLP/HTTP endpoint to export to as well, e.g. http://localhost:4318")
	flag.DurationVar(&cfg.timeout, "timeout", 60*time.Second, "give up when the flow has not finished by then")
	flag.Parse()

	cfg.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	slog.SetDefault(cfg.log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
}

type config struct {
	orders  int
	natsURL string
	kafka   string
	otlp    string
	timeout time.Duration
	log     *slog.Logger // warnings, such as a receiver that takes no metrics
}

func (c config) kafkaBrokers() []string {
	if c.kafka == "" {
		return nil
	}
	return strings.Split(c.kafka, ",")
}

var errTimeout = errors.New("the flow did not finish in time")
