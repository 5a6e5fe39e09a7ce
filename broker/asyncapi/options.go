package asyncapi

import "go.opentelemetry.io/otel/propagation"

// Option configures a Generator.
type Option interface {
	apply(*config)
}

type config struct {
	title       string
	version     string
	description string
	propagator  propagation.TextMapPropagator
}

// Defaults of the info object when no option sets it: AsyncAPI requires a
// title and a version.
const (
	DefaultTitle   = "tracebus application"
	DefaultVersion = "0.0.0"
)

func newConfig(opts []Option) config {
	c := config{
		title:   DefaultTitle,
		version: DefaultVersion,
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

// WithTitle sets the title of the info object. The default is DefaultTitle.
func WithTitle(title string) Option {
	return optionFunc(func(c *config) { c.title = title })
}

// WithVersion sets the version of the application (not of AsyncAPI) in the
// info object. The default is DefaultVersion.
func WithVersion(version string) Option {
	return optionFunc(func(c *config) { c.version = version })
}

// WithDescription sets the description of the info object; CommonMark is
// allowed.
func WithDescription(text string) Option {
	return optionFunc(func(c *config) { c.description = text })
}

// WithPropagators sets the propagator whose fields are documented as the
// headers of every message. Give the one the telemetry middleware uses when
// it is not the default W3C trace context and baggage pair (for example B3
// or Jaeger headers). A nil propagator documents no headers.
func WithPropagators(p propagation.TextMapPropagator) Option {
	return optionFunc(func(c *config) { c.propagator = p })
}
