// Package broker is what a service author uses: brokers, messages, typed
// handlers and publishers, requesters, routers, the app, subscribe options
// and errors. A Broker runs handlers over a transport (memory, NATS or
// Kafka) through a chain of middleware (telemetry).
//
// A service registers typed handlers and publishers and runs the broker.
// Values are decoded with a codec (package broker/codec: JSON by default,
// chosen per message by its content-type header), validated when their type has a Validate
// method, and what a HandleResult handler returns goes onward with the
// handler's ctx, so the trace continues:
//
//	invoices := broker.Must(broker.NewPublisher[Invoice](kafka, "invoices",
//		broker.KeyFunc(func(i Invoice) string { return i.OrderID })))
//	err := broker.HandleResult(nats, "orders.*", func(ctx context.Context, o Order) (Invoice, error) {
//		return Invoice{OrderID: o.ID, Amount: o.Total}, nil
//	}, broker.Group("billing"), broker.PublishTo(invoices))
//
// A typed handler reaches the message itself with MessageFromContext and
// settles it itself, when the subscription asks for ManualAck, with
// SettlerFromContext. Decode and validation failures are permanent: the
// message is dead-lettered with the reason, never retried. An Envelope[T]
// in place of T carries the message's key, id, correlation id and headers,
// in and out. Several handlers share one subscription when all but one
// take the messages their Filter selects.
//
// # Pulling on demand
//
// A Puller takes messages when its caller asks, and a message nobody asked
// for stays on the server: Get runs a handler on one message with the same
// settlement as a subscription, All iterates:
//
//	jobs := broker.Must(broker.NewPuller[Job](b, "jobs", broker.Group("workers")))
//	err := jobs.Get(ctx, func(ctx context.Context, j Job) error { return run(ctx, j) })
//
// # Request/reply
//
// A Requester sends a request and waits for the reply, which a
// HandleResult handler sends with its return value; Broker.Request and
// Broker.Reply are the same at the byte level. A request is bounded by its
// ctx deadline, matched to its reply by the broker's own id (a correlation
// id the caller sets, in an Envelope or a header, travels to the replier
// and back, and never matches a reply), and a reply that
// comes after its requester gave up is dropped and counted
// (RequestStats). A failing handler answers with an error reply, which the
// requester gets as a *ReplyError carrying the error's type, and its text
// only when the replier opts in (ExposeErrors):
//
//	quotes := broker.Must(broker.NewRequester[Order, Invoice](b, "invoices.quote"))
//	inv, err := quotes.Request(ctx, order) // ctx with a deadline
//
// # The byte layer
//
// The typed layer is written on the byte-level API: Subscribe and
// SubscribeBatch register handlers of *Message, Publish sends one. Every
// publish and every consume, typed or not, passes through the middleware
// given to New, so one telemetry middleware traces all of them:
//
//	tr, err := memory.New() // or natsbroker.New(nc), kafkabroker.New(kafkabroker.WithSeedBrokers(addr))
//	if err != nil { ... }
//	b := broker.New(tr, broker.WithMiddleware(middleware.NewTelemetry()))
//	b.Subscribe("orders.created", func(ctx context.Context, msg *broker.Message) error {
//		// ctx carries the process span and the message's baggage.
//		return b.Publish(ctx, &broker.Message{Destination: "invoices", Body: msg.Body})
//	}, broker.Group("billing"))
//	err = b.Run(ctx) // blocks until ctx is done, then drains in-flight handlers
//
// # Outcomes
//
// A handler's nil result acknowledges the delivery (JetStream ack, Kafka
// commit). An error is retried: the message is delivered again after the
// subscription's Backoff until MaxAttempts deliveries failed. Then it goes to
// the DeadLetter destination if one is set, or is dropped with an error log.
// Errors wrapping ErrPermanent skip the retries. A panic is recovered and
// becomes a *PanicError; the subscription keeps consuming.
//
// # Middleware
//
// Middleware given to New with WithMiddleware wraps every publish and every
// consume, single and batch; the first given is the outermost. Middleware
// given to a subscription with Use runs inside the broker's.
//
// # Apps, routers and health
//
// A service over several brokers (NATS in, Kafka out) runs them as one App:
// NewApp(WithBrokers(in, out), WithHooks(Hooks{BeforeStart: ..., AfterStop: ...}),
// WithTelemetryShutdown(providers.Shutdown)) and app.Run(ctx) with the ctx of
// SignalContext. Its stop loses nothing: every broker stops consuming and
// drains while all of them still publish, then the transports close, then
// telemetry is flushed. NewRouter groups subscriptions and publishers under
// a destination prefix with shared options; the typed functions take a
// Registrar, a *Broker or a *Router. App.HealthHandler serves liveness and
// readiness probes; readiness pings every transport.
//
// Transport and middleware authors implement the contract in package
// broker/driver; Message and Headers are declared there.
package broker
