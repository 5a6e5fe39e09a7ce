// Package driver is the contract between package broker and the code that
// plugs into it: transports (broker/memory, broker/natsbroker,
// broker/kafkabroker) and middleware (the telemetry of package
// middleware). Service authors use package broker, whose Message and
// Headers are the types declared here; they meet this package only where
// they give a transport to broker.New or middleware to broker.WithMiddleware.
//
// # Transports
//
// A Transport publishes messages, starts subscriptions from a
// SubscriptionSpec, validates a spec without starting it, opens the inbox
// its broker's requests get their replies on, and pings its system. For
// every delivery of a subscription it calls the DeliverFunc with the
// messages and an Acknowledger, which the broker calls exactly once before
// DeliverFunc returns. The broker calls these methods; a service never
// does. Info describes the transport to telemetry and logs, including the
// prefix of its temporary destinations and the separator of hierarchical
// ones.
//
// Optional capabilities are small interfaces the broker checks once:
// LoggerSetter (the transport logs), SubscriptionNamer (durable subscription
// names), ReplyPreparer (a reply address must be announced before use),
// SharedDestinations (two transports reach one server), ProgressReporter
// (an Acknowledger that can postpone redelivery). A transport's own
// subscription options implement TransportOption and reach it through
// broker.TransportOption.
//
// # Middleware
//
// A Middleware wraps both directions (WrapPublish, WrapConsume) and sees
// single messages and batches the same way, as a slice and an Operation that
// describes the system, destination, group and server without naming the
// transport; SettleMiddleware wraps acknowledgements too, and
// OutcomeObserver sees retries, dead letters and drops. MiddlewareFuncs
// builds one from plain functions:
//
//	mw := driver.MiddlewareFuncs{Consume: func(next driver.ConsumeFunc) driver.ConsumeFunc {
//		return func(ctx context.Context, op driver.Operation, msgs []*driver.Message) error {
//			start := time.Now()
//			err := next(ctx, op, msgs)
//			log.Printf("%s %s: %d messages in %v", op.Kind, op.Destination, len(msgs), time.Since(start))
//			return err
//		}
//	}}
//	b := broker.New(tr, broker.WithMiddleware(mw))
//
// Errors a middleware may want to recognise (*broker.PanicError,
// broker.ErrDecode, ...) are in package broker. The conformance suites a
// transport must pass are in the testutil packages.
package driver
