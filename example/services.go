package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/baggage"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/exporters"
	"github.com/tracebus/tracebus/middleware"
)

const (
	ordersSubject  = "orders.created.eu"
	ordersPattern  = "orders.created.*"
	invoicesTopic  = "invoices"
	flakyOrder     = 2 // this order's first billing attempt fails, to show a retry
	shippingBatch  = 10
	shippingWindow = 300 * time.Millisecond
)

// service is one traced service: its own OpenTelemetry providers (so the
// waterfall shows which service a span belongs to) and its telemetry
// middleware.
type service struct {
	name      string
	providers *exporters.Providers
	telemetry *middleware.Telemetry
}

func newService(ctx context.Context, name string, cfg config, wf *exporters.Waterfall) (*service, error) {
	opts := []exporters.Option{
		exporters.WithServiceName(name),
		exporters.WithoutGlobal(),
		exporters.WithSpanExporter(wf),
		exporters.WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, baggage.Propagator{})),
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
	return &service{
		name:      name,
		providers: p,
		telemetry: middleware.NewTelemetry(
			middleware.WithTracerProvider(p.TracerProvider),
			middleware.WithMeterProvider(p.MeterProvider),
			middleware.WithPropagators(p.Propagator),
		),
	}, nil
}

func (s *service) broker(t broker.Transport) *broker.Broker {
	return broker.New(t, broker.WithMiddleware(s.telemetry))
}

// flow wires the three services and runs orders through them.
type flow struct {
	out                     io.Writer
	checkout, billing, ship *broker.Broker
	billingOut              *broker.Broker // billing's Kafka side
	tracer                  trace.Tracer   // checkout's, for its HTTP-like root span
	shipped                 atomic.Int32
	done                    chan struct{}
	want                    int32
}

func (f *flow) subscribe() error {
	// billing: consumes orders from NATS JetStream (queue group "billing"),
	// tags the baggage, and publishes an invoice to Kafka with the same ctx,
	// which continues the trace.
	var attempts atomic.Int32
	err := f.billing.Subscribe(ordersPattern, func(ctx context.Context, msg *broker.Message) error {
		bag := baggage.FromContext(ctx)
		if msg.ID == fmt.Sprintf("order-%d", flakyOrder) && attempts.Add(1) == 1 {
			return errors.New("payment provider timeout")
		}
		invoice := "invoice-" + msg.ID[len("order-"):]
		if err := bag.Set("invoice.id", invoice); err != nil {
			return err
		}
		bag.Remove("session.id") // internal to checkout: not forwarded
		fmt.Fprintf(f.out, "billing   %s → %s (tenant=%s, attempt %d)\n", msg.ID, invoice, bag.Get("tenant"), msg.Delivery.DeliveryCount)
		return f.billingOut.Publish(ctx, &broker.Message{
			Destination: invoicesTopic,
			Key:         []byte(msg.ID),
			Body:        []byte(invoice),
		})
	}, broker.Group("billing"), broker.Name("billing"),
		broker.MaxAttempts(3), broker.WithBackoff(broker.ConstantBackoff(100*time.Millisecond)))
	if err != nil {
		return fmt.Errorf("billing subscribe: %w", err)
	}

	// shipping: consumes invoices from Kafka in batches; the baggage of the
	// batch is merged, and each message's own baggage is still there.
	err = f.ship.SubscribeBatch(invoicesTopic, func(ctx context.Context, msgs []*broker.Message) error {
		bag := baggage.FromContext(ctx)
		fmt.Fprintf(f.out, "shipping  batch of %d invoices (tenant=%s, last invoice=%s)\n", len(msgs), bag.Get("tenant"), bag.Get("invoice.id"))
		if f.shipped.Add(int32(len(msgs))) >= f.want {
			close(f.done)
		}
		return nil
	}, broker.Group("shipping"), broker.BatchSize(shippingBatch), broker.BatchWait(shippingWindow))
	if err != nil {
		return fmt.Errorf("shipping subscribe: %w", err)
	}
	return nil
}

// placeOrders is checkout: each order is a request of its own (a SERVER
// span standing in for an HTTP handler) that publishes to NATS with the
// customer's baggage.
func (f *flow) placeOrders(ctx context.Context, n int) error {
	for i := 1; i <= n; i++ {
		ctx, err := baggage.ContextWith(ctx, map[string]string{
			"tenant":     "acme",
			"user.id":    fmt.Sprintf("u-%d", 40+i),
			"session.id": fmt.Sprintf("s-%d", 900+i),
		})
		if err != nil {
			return err
		}
		ctx, span := f.tracer.Start(ctx, "POST /checkout", trace.WithSpanKind(trace.SpanKindServer))
		id := fmt.Sprintf("order-%d", i)
		err = f.checkout.Publish(ctx, &broker.Message{Destination: ordersSubject, ID: id, Body: []byte(`{"sku":"book","qty":1}`)})
		span.End()
		if err != nil {
			return fmt.Errorf("checkout publish %s: %w", id, err)
		}
		fmt.Fprintf(f.out, "checkout  placed %s\n", id)
	}
	return nil
}
