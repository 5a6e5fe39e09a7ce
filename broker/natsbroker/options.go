package natsbroker

import (
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tracebus/tracebus/broker/internal/logger"
)

// Option configures a Transport. A nil Option is ignored.
type Option interface {
	apply(*config)
}

type config struct {
	jetStream   bool     // WithJetStream was given
	jsSubjects  []string // subjects routed through JetStream; none means all
	streams     []jetstream.StreamConfig
	connectOpts []natsgo.Option
	// connectOptsSet: WithConnectOptions was given, which New refuses.
	connectOptsSet bool
	logger         logger.Choice
}

func newConfig(opts []Option) config {
	c := config{logger: logger.Default()}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithJetStream routes publishes and subscriptions through JetStream.
// Without subjects, every destination uses JetStream; with subjects
// (patterns such as "orders.>"), only destinations they cover do, and the
// rest stay on core NATS. Calling it again adds subjects.
//
// A JetStream publish waits for the stream's acknowledgement and carries
// Message.ID as the Nats-Msg-Id de-duplication header. A JetStream
// subscription consumes through a consumer of the stream that stores the
// destination; see the package documentation for how it is chosen.
//
// The streams must exist, or be declared with WithStream.
func WithJetStream(subjects ...string) Option {
	return optionFunc(func(c *config) {
		c.jetStream = true
		c.jsSubjects = append(c.jsSubjects, subjects...)
	})
}

// WithStream declares a stream the transport creates on first use, before
// the first publish or subscription that needs JetStream. Destinations
// covered by cfg.Subjects use JetStream (as if given to WithJetStream), and
// subscriptions on them consume from this stream.
//
// A stream that already exists under cfg.Name is used as it is: the
// transport never updates or deletes a stream.
func WithStream(cfg jetstream.StreamConfig) Option {
	return optionFunc(func(c *config) { c.streams = append(c.streams, cfg) })
}

// WithConnectOptions passes options to natsgo.Connect. It only applies to
// Connect: New, which uses the connection it is given, fails with
// broker.ErrInvalid when given it.
func WithConnectOptions(opts ...natsgo.Option) Option {
	return optionFunc(func(c *config) {
		c.connectOpts = append(c.connectOpts, opts...)
		c.connectOptsSet = true
	})
}
