package memory

// ServerOption configures a Server.
type ServerOption interface {
	applyServer(*serverConfig)
}

type serverConfig struct {
	sync   bool
	record bool
}

type serverOptionFunc func(*serverConfig)

func (f serverOptionFunc) applyServer(c *serverConfig) { f(c) }

// WithSyncDelivery makes the server deliver synchronously, for tests that
// must not wait: Publish hands each message to every matching subscription
// itself, in the publishing goroutine, and returns once every handler has
// finished, including the handlers of what those handlers published in
// turn, their retries and dead letters. When Publish returns, the whole
// cascade it caused is over.
//
// What changes compared with the default, asynchronous delivery:
//   - Handlers run in the goroutine of the outermost Publish, one delivery
//     after the other, depth first, subscriptions in the order they were
//     made; a subscription's Concurrency is not used (concurrent publishers
//     still make concurrent deliveries).
//   - A batch subscription receives the messages of one Publish call in
//     batches of up to its BatchSize at once, without waiting BatchWait: a
//     PublishBatch of 5 messages gives a batch of 5 (size permitting), a
//     single Publish a batch of 1.
//   - A message asked to be delivered again (a handler error within
//     MaxAttempts, a Nak) is delivered again at once: the delay of the Nak
//     is not waited for, so retries with backoff still finish within the
//     Publish call, after MaxAttempts deliveries. To keep a test from
//     hanging, a message is delivered at most 100 times, and
//     synchronous publishes nest at most 64 deep (a handler that
//     publishes to its own destination); beyond that, everything the
//     outermost Publish caused stops and that Publish returns an error
//     wrapping ErrSyncLoop.
//
// Handler errors are not Publish errors: they follow the subscription's
// retry and dead-letter policy as usual. Telemetry sees the same spans,
// parents and links as with asynchronous delivery; a send span lasts until
// the handlers it caused have returned.
func WithSyncDelivery() ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.sync = true })
}

// WithRecording makes the server keep a copy of every message published to
// it, whether a subscription matched it or not, for Published. The record is never trimmed: use it in tests, not in a
// long-running process.
func WithRecording() ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.record = true })
}
