package testutil_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/kafkatest"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// A typed handler consumes orders from NATS and returns invoices that go to
// Kafka, keyed by order id: one trace, each hop's process span the child of
// that hop's send span.
func TestTypedChainNATSToKafka(t *testing.T) {
	srv := natstest.New(t)
	cluster := kafkatest.New(t)
	cluster.CreateTopic(t, "invoices", 1)
	rec := testutil.NewRecorder(t)
	tel := middleware.NewTelemetry(
		middleware.WithTracerProvider(rec.TracerProvider),
		middleware.WithMeterProvider(rec.MeterProvider),
		middleware.WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})),
	)
	nt, err := natsbroker.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	kt, err := kafkabroker.New(cluster.TransportOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	nb := broker.New(nt, broker.WithMiddleware(tel))
	kb := broker.New(kt, broker.WithMiddleware(tel))

	invoices := broker.Must(broker.NewPublisher[testkit.Invoice](kb, "invoices",
		broker.KeyFunc(func(i testkit.Invoice) string { return i.OrderID })))
	err = broker.HandleResult(nb, "orders.*", func(_ context.Context, o testkit.Order) (testkit.Invoice, error) {
		return testkit.Invoice{OrderID: o.ID, Amount: 5 * o.Quantity}, nil
	}, broker.Group("billing"), broker.PublishTo(invoices))
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		inv testkit.Invoice
		key string
	}
	in := testkit.NewInbox[got](15 * time.Second)
	err = broker.Handle(kb, "invoices", func(ctx context.Context, inv testkit.Invoice) error {
		in.Put(got{inv, string(broker.MessageFromContext(ctx).Key)})
		return nil
	}, broker.Group("mailer"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := kb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := nb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := broker.Must(broker.NewPublisher[testkit.Order](nb, "orders.eu")).Publish(ctx, testkit.Order{ID: "o-42", Quantity: 2}); err != nil {
		t.Fatal(err)
	}
	g := in.Next(t)
	if g.inv != (testkit.Invoice{OrderID: "o-42", Amount: 10}) || g.key != "o-42" {
		t.Errorf("got %+v with key %q", g.inv, g.key)
	}
	closeCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := nb.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	if err := kb.Close(closeCtx); err != nil {
		t.Fatal(err)
	}

	want := `send orders.eu (producer)
  process orders.* (consumer)
    send invoices (producer)
      process invoices (consumer)
`
	if tree := testutil.Tree(rec.Spans()); tree != want {
		t.Errorf("span tree:\n%s\nwant:\n%s", tree, want)
	}
}
