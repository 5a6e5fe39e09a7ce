package asyncapi

import "go.opentelemetry.io/otel/propagation"

// Option configures a Generator.
type Option interface {
	apply(*config)
}

type config struct {
	info       Info
	propagator propagation.TextMapPropagator
}

// Defaults of the info object when WithInfo does not set it: AsyncAPI
// requires a title and a version.
const (
	defaultTitle   = "tracebus application"
	defaultVersion = "0.0.0"
)

func newConfig(opts []Option) config {
	c := config{
		info: Info{Title: defaultTitle, Version: defaultVersion},
		// The W3C propagators are what the telemetry middleware uses unless
		// the application configures others (OTEL_PROPAGATORS).
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
	for _, o := range opts {
		o.apply(&c)
	}
	return c
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithInfo sets the info object of the document: the application's title,
// its version (not AsyncAPI's) and a description, in which CommonMark is
// allowed. An empty Title or Version keeps the default, "tracebus
// application" and "0.0.0", as AsyncAPI requires both.
func WithInfo(info Info) Option {
	return optionFunc(func(c *config) {
		if info.Title != "" {
			c.info.Title = info.Title
		}
		if info.Version != "" {
			c.info.Version = info.Version
		}
		c.info.Description = info.Description
	})
}

// WithPropagators sets the propagator whose fields are documented as the
// headers of every message. Give the one the telemetry middleware uses when
// it is not the default W3C trace context and baggage pair (for example B3
// or Jaeger headers). A nil propagator documents no headers.
func WithPropagators(p propagation.TextMapPropagator) Option {
	return optionFunc(func(c *config) { c.propagator = p })
}
