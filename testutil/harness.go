package testutil

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/codec"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/broker/memory"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/internal/foreignopt"
	"github.com/tracebus/tracebus/internal/syncerrs"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil/kafkatest"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// Harness runs a service's real wiring in a test, as FastStream's
// TestBroker does: it hands out brokers on one in-process memory server,
// each with the telemetry middleware recording into a Recorder, records
// every message published and every delivery a handler got, and closes
// everything when the test ends. With WithSyncDelivery, Publish returns only
// once every handler it caused has finished, so a test needs no waits.
//
// The pattern: service code takes its brokers as parameters and registers
// its handlers and publishers on them; main passes NATS and Kafka brokers,
// the test passes brokers from the harness.
//
//	h := testutil.NewHarness(t, testutil.WithSyncDelivery())
//	in, out := h.Broker(), h.Broker()
//	if err := billing.Wire(in, out); err != nil {
//		t.Fatal(err)
//	}
//	... publish an order on in ...
//	testutil.AssertPublishedOnce(t, h, "invoices", billing.Invoice{OrderID: "42", Amount: 10}, testutil.Key("42"))
//	h.AssertNoDeadLetters(t)
//
// The brokers share one server, so they share destinations: a service that
// uses the same name on two systems (a bridge from NATS "orders" to Kafka
// "orders") would feed itself. It needs a harness per system, each with its
// own record and spans, and then loses the single span tree.
//
// With OnNATS or OnKafka the same test runs on a real transport: see
// OnNATS for what changes. On the memory transport, the subscription
// options of other transports (natsbroker.Stream, kafkabroker.StartOffset)
// are checked and ignored: see IgnoredOptions.
type Harness struct {
	srv          *memory.Server          // nil on a real transport
	track        *tracker                // nil on the memory transport
	foreign      *foreignOptions         // nil on a real transport
	newTransport func() driver.Transport // nil on the memory transport
	rec          *Recorder
	tel          *middleware.Telemetry
	codecs       []codec.Codec
	logger       *slog.Logger
	tb           testing.TB
	opts         []broker.Option
	start        bool
	raise        bool

	mu    sync.Mutex
	calls []Call
}

// HarnessOption configures a Harness.
type HarnessOption interface {
	applyHarness(*harnessConfig)
}

type harnessConfig struct {
	real       func(testing.TB) (system string, newTransport func() driver.Transport)
	wait       time.Duration
	sync       bool
	raise      bool
	noStart    bool
	brokerOpts []broker.Option
	telOpts    []middleware.Option
	codecs     []codec.Codec
}

type harnessOptionFunc func(*harnessConfig)

func (f harnessOptionFunc) applyHarness(c *harnessConfig) { f(c) }

// WithSyncDelivery makes Publish on the harness's brokers return only once
// every matching handler, and the handlers of what they published in turn,
// have finished; retries do not wait for their backoff. See
// memory.WithSyncDelivery for what changes. On a real transport (OnNATS,
// OnKafka) a Publish made outside handlers waits instead until the harness
// settled, and retries wait for their backoff.
func WithSyncDelivery() HarnessOption {
	return harnessOptionFunc(func(c *harnessConfig) { c.sync = true })
}

// WithHandlerErrors makes Publish and PublishBatch on the harness's brokers,
// typed publishers and requesters on them, return the errors of the handlers the
// publish caused, as FastStream's test client raises them, so that a test
// asserts the failure of the handler it just triggered with errors.Is and
// errors.As: the handler's own error, a *broker.DecodeError, a
// *broker.PanicError. It implies WithSyncDelivery.
//
// A handler's error counts once it is final: after its retries (a handler
// that succeeds on a later attempt returns nothing), whether the message
// was then dead-lettered or dropped, which the error's text says. The
// handlers of what handlers published with their ctx count as well (the
// onward publishes themselves return as usual, so the service behaves as
// in production), and so do those of a dead-letter destination. Several
// failures are joined with errors.Join, in the order the handlers
// returned, after the publish's own error if any; each names the
// subscription. Call records every attempt.
//
// Only a publish made outside any handler of the harness returns them; a
// publish made with a ctx not derived from the handler's inside a handler
// counts as such. On a real transport (OnNATS, OnKafka) the publish
// returns the final failures of every handler that failed while it waited
// for the harness to settle, and a publish made while any handler of the
// harness runs counts as that handler's.
func WithHandlerErrors() HarnessOption {
	return harnessOptionFunc(func(c *harnessConfig) { c.sync, c.raise = true, true })
}

// WithoutStart hands out brokers that are not started yet, for a service
// whose wiring starts them itself, typically through a broker.App (which
// refuses brokers that are already started). They are still closed when
// the test ends.
func WithoutStart() HarnessOption {
	return harnessOptionFunc(func(c *harnessConfig) { c.noStart = true })
}

// WithBrokerOptions adds opts to every broker the harness hands out, after
// its own (logger, telemetry, delivery record). Middleware given here runs
// inside the telemetry middleware.
func WithBrokerOptions(opts ...broker.Option) HarnessOption {
	return harnessOptionFunc(func(c *harnessConfig) { c.brokerOpts = append(c.brokerOpts, opts...) })
}

// WithTelemetryOptions adds opts to the telemetry middleware, after the
// harness's providers and propagators: WithSettleSpans, WithoutCreateSpans,
// WithLinkedProcessSpans.
func WithTelemetryOptions(opts ...middleware.Option) HarnessOption {
	return harnessOptionFunc(func(c *harnessConfig) { c.telOpts = append(c.telOpts, opts...) })
}

// WithCodecs gives the typed accessors (Published, Handled, ...) codecs of
// the service's own beyond the built-in ones; they are picked by the
// content-type header of each message, as the broker does.
func WithCodecs(codecs ...codec.Codec) HarnessOption {
	return harnessOptionFunc(func(c *harnessConfig) { c.codecs = append(c.codecs, codecs...) })
}

// OnNATS builds the harness's brokers on NATS instead of the memory
// transport, as FastStream's TestBroker(broker, with_real=True) does: each
// Broker call connects to the server at url or, when url is "", to a
// nats-server started for the test (natstest.New, so TRACEBUS_NATS_URL
// points it at an external server). opts configure every transport:
// natsbroker.WithStream or WithJetStream put destinations on JetStream.
//
// The assertions are the same. Without memory's synchronous delivery the
// harness waits instead, on conditions, never on a clock: it knows every
// subscription of its brokers and every message published through them,
// so how many deliveries each subscription is owed (one per message per
// group, one per message per subscription without a group), and it has
// settled once no publish and no delivery runs and every subscription had
// its deliveries, retries excluded, dead letters and drops included.
// Published, AllPublished, DeadLetters, AssertNoDeadLetters, Calls,
// Recorder and AssertSpanTree, and the package's assertions that use them,
// wait until the harness settled; with WithSyncDelivery or
// WithHandlerErrors, so does a Publish made outside handlers, before it
// returns. The wait is bounded by WithWaitTimeout (30 s by default); past
// it the test fails, naming the subscriptions still owed messages.
//
// What the wait cannot see: messages that reach a subscription from
// outside the harness (they are handled but owed nothing), subscriptions
// of a broker not started yet (WithoutStart: publish only once the
// service started its brokers), a subscription stopped during the test
// (it stays owed its messages), and settle spans (WithSettleSpans), which
// end after the delivery. A publish made while a handler runs is taken for
// that handler's and does not wait. Options of another transport are
// refused as in production.
func OnNATS(url string, opts ...natsbroker.Option) HarnessOption {
	return harnessOptionFunc(func(c *harnessConfig) {
		c.real = func(tb testing.TB) (string, func() driver.Transport) {
			addr := url
			if addr == "" {
				addr = natstest.New(tb).URL()
			}
			return "nats", func() driver.Transport {
				t, err := natsbroker.Connect(addr, opts...)
				if err != nil {
					tb.Fatalf("testutil: connect to NATS: %v", err)
				}
				return t
			}
		}
	})
}

// OnKafka builds the harness's brokers on Kafka, as OnNATS does on NATS:
// each Broker call makes a transport for the seed brokers in seeds
// ("host:port", comma-separated) or, when seeds is "", for a cluster
// started for the test (kafkatest.New, so TRACEBUS_KAFKA_BROKERS points it
// at an external cluster) with its quick group timings. Topics are created
// on first use, with one partition; opts configure every transport and
// come last.
func OnKafka(seeds string, opts ...kafkabroker.Option) HarnessOption {
	return harnessOptionFunc(func(c *harnessConfig) {
		c.real = func(tb testing.TB) (string, func() driver.Transport) {
			var base []kafkabroker.Option
			if seeds == "" {
				base = kafkatest.New(tb).TransportOptions()
			} else {
				base = []kafkabroker.Option{kafkabroker.WithSeedBrokers(strings.Split(seeds, ",")...)}
			}
			base = append(base, kafkabroker.WithAutoCreateTopics(1, -1))
			all := append(base, opts...)
			return "kafka", func() driver.Transport {
				t, err := kafkabroker.New(all...)
				if err != nil {
					tb.Fatalf("testutil: Kafka transport: %v", err)
				}
				return t
			}
		}
	})
}

// WithWaitTimeout bounds how long the harness on a real transport waits
// until it settled (see OnNATS); the default is 30 s. It does nothing on
// the memory transport.
func WithWaitTimeout(d time.Duration) HarnessOption {
	return harnessOptionFunc(func(c *harnessConfig) { c.wait = d })
}

// NewHarness returns a harness for the test t: a recording memory server
// (synchronous with WithSyncDelivery), a Recorder, and a telemetry middleware
// using them with W3C trace context and baggage. Broker logs go to t's
// output.
func NewHarness(t testing.TB, opts ...HarnessOption) *Harness {
	t.Helper()
	var cfg harnessConfig
	for _, o := range opts {
		if o != nil {
			o.applyHarness(&cfg)
		}
	}
	rec := NewRecorder(t)
	telOpts := append([]middleware.Option{
		middleware.WithTracerProvider(rec.TracerProvider),
		middleware.WithMeterProvider(rec.MeterProvider),
		middleware.WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})),
	}, cfg.telOpts...)
	h := &Harness{
		rec:    rec,
		tel:    middleware.NewTelemetry(telOpts...),
		codecs: cfg.codecs,
		logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
		tb:     t,
		opts:   cfg.brokerOpts,
		start:  !cfg.noStart,
		raise:  cfg.raise,
	}
	if cfg.real != nil {
		if cfg.wait <= 0 {
			cfg.wait = defaultWait
		}
		system, newTransport := cfg.real(t)
		h.track = newTracker(t, system, cfg.wait, cfg.sync, cfg.raise)
		h.newTransport = newTransport
		return h
	}
	srvOpts := []memory.ServerOption{memory.WithRecording()}
	if cfg.sync {
		srvOpts = append(srvOpts, memory.WithSyncDelivery())
	}
	h.srv = memory.NewServer(srvOpts...)
	h.foreign = newForeignOptions(t, h.logger)
	return h
}

// Broker returns a new broker on the harness's server (a new connection
// to it on a real transport), already started
// (unless WithoutStart was given), so that handlers begin as soon as the
// service registers them; it is closed
// gracefully when the test ends, failing the test if it cannot be. Its
// options are the harness's (logger, telemetry, delivery record), those of
// WithBrokerOptions, then opts. Every broker of the harness sees the
// messages of the others.
func (h *Harness) Broker(opts ...broker.Option) *broker.Broker {
	h.tb.Helper()
	var tr driver.Transport
	var mws []driver.Middleware
	if h.track != nil {
		// The tracker outermost, so that a settled harness has ended its
		// spans and does not give the handlers' failures to the telemetry
		// of the publish.
		tr = h.newTransport()
		mws = []driver.Middleware{h.track, h.tel, driver.MiddlewareFuncs{Publish: h.track.recordPublish, Consume: h.recordCall}}
	} else {
		mt := Memory(h.tb, memory.WithServer(h.srv))
		h.tb.Cleanup(foreignopt.Tolerate(mt, h.foreign.check)) // after the broker closed
		tr = mt
		mws = []driver.Middleware{h.tel, driver.MiddlewareFuncs{Consume: h.recordCall}}
		if h.raise {
			// Outermost, so that the telemetry of the publish does not
			// take the handlers' failures for its own.
			mws = append([]driver.Middleware{handlerErrors{}}, mws...)
		}
	}
	all := append([]broker.Option{
		broker.WithLogger(h.logger),
		broker.WithMiddleware(mws...),
	}, h.opts...)
	b := broker.New(tr, append(all, opts...)...)
	if h.start {
		if err := b.Start(context.Background()); err != nil {
			h.tb.Fatalf("testutil: start broker: %v", err)
		}
	}
	h.tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			h.tb.Errorf("testutil: close broker: %v", err)
		}
	})
	return b
}

// Server returns the memory server the harness's brokers share; nil on a
// real transport.
func (h *Harness) Server() *memory.Server { return h.srv }

// Recorder returns the recorder of the harness's spans and metrics, once
// the harness settled on a real transport.
func (h *Harness) Recorder() *Recorder {
	h.settled()
	return h.rec
}

// AssertSpanTree checks the spans recorded so far against want; see the
// package-level AssertSpanTree. On a real transport it waits until the
// harness settled.
func (h *Harness) AssertSpanTree(t testing.TB, want string) {
	t.Helper()
	AssertSpanTree(t, h.Recorder().Spans(), want)
}

// Published returns copies of the messages published to exactly
// destination through any broker of the harness, in publish order,
// including those no subscription matched and dead letters. On a real
// transport it waits until the harness settled and leaves out the
// messages the transport refused.
func (h *Harness) Published(destination string) []*broker.Message {
	if h.track != nil {
		return h.track.publishedTo(destination, false)
	}
	var out []*broker.Message
	for _, m := range h.srv.Published() {
		if m.Destination == destination {
			out = append(out, m)
		}
	}
	return out
}

// AllPublished returns copies of every message published through the
// harness's brokers, in publish order, as Published does.
func (h *Harness) AllPublished() []*broker.Message {
	if h.track != nil {
		return h.track.publishedTo("", true)
	}
	return h.srv.Published()
}

// IgnoredOptions returns, per subscription destination (the pattern as
// given to Subscribe), the subscription options of other transports that
// the harness's memory brokers ignored, named as their package does:
// "natsbroker.Stream(ORDERS)". The memory transport refuses such options
// with errors.ErrUnsupported, except under the harness, so that a service
// wired for NATS and Kafka runs its real wiring in a test. Each option is
// first checked by its own transport, without its server: what makes
// Subscribe fail there (a value out of range, options that contradict
// each other or the destination) fails it here too; what only the server
// knows (that a stream exists) is not checked. Each ignored option is
// logged once, at Info. Options of a transport the harness does not know
// are ignored unchecked. On a real transport nothing is ignored: options
// of another transport fail Subscribe as in production, and
// IgnoredOptions returns nil.
func (h *Harness) IgnoredOptions() map[string][]string {
	if h.foreign == nil {
		return nil
	}
	return h.foreign.list()
}

// settled waits until the harness settled on a real transport.
func (h *Harness) settled() {
	if h.track != nil {
		h.track.settled()
	}
}

// Call is one delivery a handler of a harness broker received.
type Call struct {
	// Subscription is the destination or pattern the handler subscribed
	// to, such as "orders.*".
	Subscription string
	// Group is the subscription's group, if any.
	Group string
	// Messages are copies of what the handler got: one message, or a
	// batch.
	Messages []*broker.Message
	// Err is what the handler returned, after the typed layer (decode and
	// validation failures) and panic recovery; nil on success.
	Err error
}

// Calls returns the deliveries made to the handlers subscribed to
// subscription (the pattern as given to Subscribe or Handle, not a
// concrete destination), in the order they began; redeliveries appear
// again. In asynchronous mode a delivery still running has no Err yet.
// On a real transport it waits until the harness settled.
func (h *Harness) Calls(subscription string) []Call {
	h.settled()
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Call
	for _, c := range h.calls {
		if c.Subscription == subscription {
			out = append(out, c)
		}
	}
	return out
}

// recordCall is the consume middleware that feeds Calls.
func (h *Harness) recordCall(next driver.ConsumeFunc) driver.ConsumeFunc {
	return func(ctx context.Context, op driver.Operation, msgs []*broker.Message) error {
		copies := make([]*broker.Message, len(msgs))
		for i, m := range msgs {
			copies[i] = m.Clone()
		}
		h.mu.Lock()
		i := len(h.calls)
		h.calls = append(h.calls, Call{Subscription: op.Destination, Group: op.Group, Messages: copies})
		h.mu.Unlock()
		err := next(ctx, op, msgs)
		h.mu.Lock()
		h.calls[i].Err = err
		h.mu.Unlock()
		if errs := syncerrs.FromContext(ctx); errs != nil && len(msgs) > 0 {
			// Final unless an outcome says it is retried (handlerErrors).
			errs.Set(msgs[0], handlerFailure(op, err, ""))
		}
		return err
	}
}

// DeadLetters returns the messages published to a dead-letter destination
// (those carrying broker.HeaderDeadLetterOrigin), in publish order.
func (h *Harness) DeadLetters() []*broker.Message {
	var out []*broker.Message
	for _, m := range h.AllPublished() {
		if m.Headers.Get(broker.HeaderDeadLetterOrigin) != "" {
			out = append(out, m)
		}
	}
	return out
}

// AssertNoDeadLetters fails t when a message was dead-lettered, naming
// where each failed and why.
func (h *Harness) AssertNoDeadLetters(t testing.TB) {
	t.Helper()
	dead := h.DeadLetters()
	if len(dead) == 0 {
		return
	}
	var b strings.Builder
	for _, m := range dead {
		fmt.Fprintf(&b, "\n  %s from %s after %s attempt(s): %s", m.Destination,
			m.Headers.Get(broker.HeaderDeadLetterOrigin), m.Headers.Get(broker.HeaderDeadLetterAttempts),
			m.Headers.Get(broker.HeaderDeadLetterError))
	}
	t.Errorf("want no dead letters, got %d:%s", len(dead), b.String())
}
