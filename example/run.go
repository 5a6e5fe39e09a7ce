package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/exporters"
	"github.com/tracebus/tracebus/testutil/kafkatest"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// run runs the flow, printing to w, which must be safe for concurrent
// writes of whole lines (os.Stdout is).
func run(ctx context.Context, cfg config, w io.Writer) (err error) {
	// Handlers of three services print concurrently; the waterfall gets w
	// itself so that it can tell a terminal and use colour.
	out := &lockedWriter{w: w}
	// Servers: embedded unless told otherwise.
	natsURL := cfg.natsURL
	if natsURL == "" {
		srv, err := natstest.Run()
		if err != nil {
			return fmt.Errorf("start embedded NATS: %w", err)
		}
		defer srv.Shutdown()
		natsURL = srv.URL()
	}
	kafkaOpts := []kafkabroker.Option{kafkabroker.WithAutoCreateTopics(3, 1)}
	if brokers := cfg.kafkaBrokers(); brokers != nil {
		kafkaOpts = append(kafkaOpts, kafkabroker.WithBrokers(brokers...))
	} else {
		cluster, err := kafkatest.Start()
		if err != nil {
			return fmt.Errorf("start in-process Kafka: %w", err)
		}
		defer cluster.Close()
		kafkaOpts = append(kafkaOpts, cluster.TransportOptions()...)
	}

	// One waterfall for all three services, so a trace prints as one tree.
	wf := exporters.NewWaterfall(w)
	var services []*service
	defer func() {
		flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for _, s := range services {
			err = errors.Join(err, s.providers.Shutdown(flush))
		}
	}()
	for _, name := range []string{"checkout", "billing", "shipping"} {
		s, err := newService(ctx, name, cfg, wf)
		if err != nil {
			return err
		}
		services = append(services, s)
	}
	checkout, billing, shipping := services[0], services[1], services[2]

	stream := natsbroker.WithStream(jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}, MaxAge: time.Hour})
	natsTransport := func(name string) (broker.Transport, error) {
		return natsbroker.Connect(natsURL, stream, natsbroker.WithConnectOptions(natsgo.Name(name)))
	}
	kafkaTransport := func(name string) (broker.Transport, error) {
		return kafkabroker.New(append(kafkaOpts, kafkabroker.WithClientID(name))...)
	}

	f := &flow{out: out, done: make(chan struct{}), want: int32(cfg.orders), tracer: checkout.providers.TracerProvider.Tracer("example/checkout")}
	var brokers []*broker.Broker
	defer func() {
		closing, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for _, b := range brokers {
			err = errors.Join(err, b.Close(closing))
		}
	}()
	for _, spec := range []struct {
		dst  **broker.Broker
		svc  *service
		conn func(string) (broker.Transport, error)
	}{
		{&f.checkout, checkout, natsTransport},
		{&f.billing, billing, natsTransport},
		{&f.billingOut, billing, kafkaTransport},
		{&f.ship, shipping, kafkaTransport},
	} {
		t, err := spec.conn(spec.svc.name)
		if err != nil {
			return fmt.Errorf("%s: connect: %w", spec.svc.name, err)
		}
		*spec.dst = spec.svc.broker(t)
		brokers = append(brokers, *spec.dst)
	}
	if err := f.subscribe(); err != nil {
		return err
	}
	for _, b := range brokers {
		if err := b.Start(ctx); err != nil {
			return err
		}
	}
	if err := f.placeOrders(ctx, cfg.orders); err != nil {
		return err
	}
	select {
	case <-f.done:
		fmt.Fprintf(out, "\nall %d orders shipped; traces:\n\n", cfg.orders)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(cfg.timeout):
		return errTimeout
	}
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
