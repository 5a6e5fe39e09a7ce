package broker_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/tracebus/tracebus/broker"
)

// An App runs a service over two brokers — in production a NATS broker
// (natsbroker) in and a Kafka broker (kafkabroker) out — with a router,
// lifecycle hooks and health probes. A service calls Run, which starts the
// app, blocks until ctx is done and stops it:
//
//	ctx, stop := broker.SignalContext(context.Background()) // SIGINT, SIGTERM
//	defer stop()
//	err := app.Run(ctx)
//
// Here Start and Stop, which Run calls, show the steps. Stop stops
// consuming on every broker, lets the handlers in flight finish and
// publish, closes the transports and flushes telemetry last.
func ExampleApp() {
	in := memoryBroker()  // natsbroker over a NATS connection
	out := memoryBroker() // kafkabroker.New(kafkabroker.WithSeedBrokers(...))

	type Order struct{ ID string }
	type Shipment struct{ Order string }
	shipped := broker.Must(broker.NewPublisher[Shipment](out, "shipments"))
	done := make(chan struct{})
	broker.Handle(out, "shipments", func(_ context.Context, s Shipment) error {
		fmt.Println("shipped", s.Order)
		close(done)
		return nil
	})

	// On NATS, "orders" and "created" make the subject "orders.created";
	// written with its dot, the prefix means the same on every transport.
	orders := broker.NewRouter(in, "orders.", broker.Group("shipping"), broker.MaxAttempts(5))
	broker.HandleResult(orders, "created", func(_ context.Context, o Order) (Shipment, error) {
		return Shipment{Order: o.ID}, nil
	}, broker.PublishTo(shipped))

	ctx := context.Background()
	app := broker.NewApp(
		broker.WithBrokers(in, out),
		broker.WithShutdownTimeout(10*time.Second),
		broker.WithHooks(broker.Hooks{
			AfterStart: func(context.Context) error { fmt.Println("started"); return nil },
			AfterStop:  func(context.Context) error { fmt.Println("stopped"); return nil },
		}),
		// broker.WithTelemetryShutdown(providers.Shutdown), from exporters.Setup
	)
	probes := httptest.NewServer(app.HealthHandler()) // mux.Handle("/readyz", app.HealthHandler())
	defer probes.Close()

	if err := app.Start(ctx); err != nil {
		panic(err)
	}
	if err := broker.Must(broker.NewPublisher[Order](in, "orders.created")).Publish(ctx, Order{ID: "A-1"}); err != nil {
		panic(err)
	}
	<-done
	res, err := http.Get(probes.URL + "/readyz")
	if err != nil {
		panic(err)
	}
	res.Body.Close()
	fmt.Println("ready:", res.StatusCode)

	shutdown, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := app.Stop(shutdown); err != nil {
		panic(err)
	}
	// Output:
	// started
	// shipped A-1
	// ready: 200
	// stopped
}
