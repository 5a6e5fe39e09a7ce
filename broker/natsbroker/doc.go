// Package natsbroker is the NATS transport of tracebus: it carries a
// broker.Broker's messages over core NATS subjects and JetStream streams,
// using nats.go and its jetstream package.
//
// Create the transport from a connection you configured yourself, so that
// TLS, credentials, cluster URLs and reconnect handlers stay yours, or let
// Connect dial one:
//
//	nc, err := natsgo.Connect(natsgo.DefaultURL, natsgo.Name("billing"))
//	...
//	tr, err := natsbroker.New(nc) // or natsbroker.Connect(natsgo.DefaultURL)
//	if err != nil { ... }
//	b := broker.New(tr, broker.WithMiddleware(middleware.NewTelemetry()))
//	b.Subscribe("orders.*", handle, broker.Group("billing"))
//	err = b.Run(ctx)
//
// # Core NATS
//
// By default every destination is a core NATS subject. Publish hands the
// message to the connection and returns, like nats.go's Publish; a batch is
// flushed, so that its errors are known. Subscriptions take wildcards ("*"
// and ">") and queue groups (broker.Group). Message.Delivery.Subscription
// holds the pattern, Message.Destination the subject the message was sent
// to, and Message.ReplyTo the reply subject of a request; IsTemporary tells
// the broker that "_INBOX." subjects (or the connection's custom inbox
// prefix) are temporary, so they stay out of span names.
//
// Core NATS has no acknowledgements and no redelivery: a message reaches
// whoever listens when it is published. A handler error is therefore retried
// by the subscription: the message steps aside for the subscription's
// backoff and is then delivered again, with Delivery.DeliveryCount
// increased, while the messages behind it keep flowing. OrderedRetries
// retries in place instead, holding back the messages behind it when the
// concurrency is 1: that keeps their order, but under load nats.go's
// pending limits (PendingLimits) fill during the backoff and it drops
// messages, many more than the default loses (see docs/reliability.md).
//
// Core NATS may drop messages: nats.go drops what exceeds a subscription's
// pending limits (a slow consumer). The transport counts every drop from
// nats.go's Subscription.Dropped, checked when nats.go reports
// ErrSlowConsumer to the connection's asynchronous error handler (the
// transport chains its own to the handler the connection had), while drops
// go on, and when the subscription closes, and reports it to the broker,
// which logs a rate-limited warning naming the subject and the count, and
// which the telemetry middleware counts in tracebus.consumer.dropped.messages
// with tracebus.drop.reason "slow_consumer". Settler.InProgress is not
// supported on core NATS (matching errors.ErrUnsupported).
//
// # JetStream
//
// WithJetStream routes destinations through JetStream: all of them, or
// those covered by the subjects given. WithStream declares a stream that
// the transport creates on first use; its subjects use JetStream too. Single
// subscriptions can also opt in or out with JetStream and Core.
//
// A JetStream publish waits for the stream's acknowledgement (PubAck).
// Message.ID becomes the Nats-Msg-Id header, so that the stream drops a
// message published twice, for example when a publish is retried after a
// timeout. A batch is published asynchronously and every acknowledgement
// awaited; messages that failed are reported in a broker.BatchError.
//
// A JetStream subscription consumes from the stream that stores its
// destination (found by subject, or named with Stream) through a consumer:
//
//   - broker.Name names a durable consumer, which keeps its position
//     across restarts; subscriptions with the same name share its messages.
//   - broker.Group without a name shares a durable consumer named after the
//     group and the destination ("billing_orders_+" for group "billing" on
//     "orders.*"), so that the members of the group share the messages.
//   - Without either, the consumer is ephemeral: it starts with the messages
//     published from then on and is deleted when the subscription closes.
//
// The transport creates or updates that consumer (explicit acks, the
// destination as filter subject; ConfigureConsumer adjusts the rest), or
// binds to one managed elsewhere with BindConsumer. A plain subscription
// consumes with jetstream's Consume, which keeps pull requests outstanding
// and calls back for each message, like a push consumer; a batch
// subscription fetches up to BatchSize messages, waiting at most BatchWait.
// Delivery facts come from the message's metadata: stream and consumer
// sequence, delivery count, timestamp, stream and consumer names.
//
// A handler's success acks the message. An error naks it with the
// subscription's backoff as delay, so the server redelivers it later; when
// the broker gives up (MaxAttempts, broker.ErrPermanent) the message is
// terminated or, with a dead-letter destination, acked after being
// forwarded. While a handler runs, the transport reports progress to the
// server (+WPI) several times per AckWait, so that a long handler is not
// raced by a redelivery of its own message, and Settler.InProgress sends
// one at once. It does so for at most MaxHandlingTime (default 10
// minutes) since the delivery began or the handler last
// called InProgress: then the messages are nak'ed for another handler, the
// hang is logged and counted (tracebus.consumer.hung.messages), the
// handler's ctx is cancelled and what it settles later is ignored. The
// consumers the transport creates have MaxDeliver set to the subscription's
// broker.MaxAttempts plus 5, so that deliveries the broker never decides on
// (a process crashing in the handler) cannot go on forever; set it
// otherwise with ConfigureConsumer. A message the server stops redelivering
// there is not lost without a word: the transport listens to the server's
// max-deliveries advisory, logs a warning naming the stream sequence and
// reports the message as dropped (tracebus.drop.reason "max_deliveries").
//
// # Reconnects and shutdown
//
// nats.go reconnects and subscribes again on its own; JetStream consumption
// resumes with it. When a consumer disappears (deleted by an operator, or
// an ephemeral one expired while the client was away), the subscription
// notices it even while every handler is busy (through the server's
// consumer-deleted advisory, and by asking the server) and creates it
// again, starting at the lowest stream sequence it received but did not
// settle, or after the highest it settled: nothing published in between is
// skipped, and a durable consumer does not replay the stream from its
// start. Messages settled after that point may be handled again (at least
// once). Members of a group in other processes that re-create the same
// durable first decide where it starts; their unsettled messages follow
// that member's position.
//
// A plain subscription buffers up to nats.go's default of 500 messages
// ahead of the handlers (jetstream.DefaultMaxMessages). A buffered message
// already counts down its AckWait: with slow handlers, lower the buffer
// with ConsumeOptions(jetstream.PullMaxMessages(n)). Closing a subscription stops taking messages, hands
// messages already received but not started back to the server (JetStream)
// or delivers them (core NATS), waits for the handlers in flight and
// flushes their acknowledgements.
//
// # Key-value and object store watches
//
// WatchKV and WatchObjects turn a subscription into a watch of a bucket,
// through nats.go's KeyValue.Watch and ObjectStore.Watch: the current
// contents first (the last value of each matching key, every matching
// object), then every change, one message per update, in the order of the
// bucket's stream. The bucket must exist; the transport never creates one,
// and Start fails with an error naming a missing bucket.
//
// An update is delivered once, to every watch of it (there are no groups),
// and nothing acknowledges it on the server. A handler error is retried in
// place per the subscription's policy (MaxAttempts, RetryBackoff), holding
// back the updates behind it when the concurrency is 1, then dead-lettered
// or dropped with an error log, as on core NATS. Batch handlers are
// refused with broker.ErrInvalid: updates of one key must be handled in
// order, one at a time.
//
// nats.go's watcher re-creates its consumer when it misses updates or the
// server lost it (a reconnect, a server restart), from the revision after
// the last it received. When it gives up instead, the subscription opens a
// new watcher: a KV watch resumes at the revision after the last update
// it received and skips revisions it delivered already, so every update
// the bucket still holds is delivered; an object watch gets every object
// again and skips the versions (NUID, modification time, deletion) it
// delivered. What a bucket no longer holds cannot be delivered: with a
// KV History of 1, a value replaced before the watch read it is gone.
//
// Telemetry sees each update as a delivery: a process span named after
// the pattern ("process config.*"), messaging.destination.name the key or
// object name. A KV entry is a stream message whose headers the KV API
// neither writes nor returns, so nothing travels with a put: the process
// span of a KV update starts a trace, and the handler's baggage is empty.
// An object's metadata holds the headers it was put with: an object put
// with trace-context and baggage headers (a propagator injecting into
// ObjectMeta.Headers) gives its process span the producer's span as parent
// (or link, with the telemetry middleware's linked process spans) and the
// handler its baggage. An AsyncAPI document lists a watch as a subscriber
// on its key or name pattern.
//
// # Request/reply
//
// broker.Request uses one subscription per broker to a fresh inbox,
// "_INBOX.<nuid>.*" (or the connection's inbox prefix), as nats.go's own
// Request does; each request gets its own token of it, so a plain nats.go
// responder (msg.Respond) can answer. The server's no-responders status
// becomes an error wrapping broker.ErrNoResponders and nats.ErrNoResponders.
// A request to a JetStream subject is stored like any message, its reply
// subject in the x-tracebus-reply-to header; replies always go over core
// NATS.
//
// Header keys are written exactly as given and read as they arrive: NATS
// headers are case-sensitive, and a "traceparent" written by another
// language stays "traceparent". Keys NATS cannot carry (spaces, colons,
// control characters) are dropped with a warning instead of failing the
// publish.
package natsbroker
