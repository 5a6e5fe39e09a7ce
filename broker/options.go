package broker

import (
	"errors"
	"log/slog"

	"github.com/tracebus/tracebus/broker/codec"
	"github.com/tracebus/tracebus/broker/driver"
)

// Option configures a Broker. A nil Option is ignored; so is a nil value
// given to an option (WithLogger(nil)), which leaves the default.
type Option interface {
	applyBroker(*config)
}

type config struct {
	middleware []driver.Middleware
	logger     *slog.Logger
	errorText  func(error) string
	codec      codec.Codec
	codecs     codecSet
}

func newConfig(opts []Option) config {
	c := config{logger: slog.Default(), codec: codec.JSON, codecs: defaultCodecs()}
	for _, o := range opts {
		if o != nil {
			o.applyBroker(&c)
		}
	}
	return c
}

type optionFunc func(*config)

func (f optionFunc) applyBroker(c *config) { f(c) }

// WithMiddleware adds middleware that wraps every publish and every consume
// of the broker. The first middleware given is the outermost. Calling it
// again appends.
func WithMiddleware(mws ...driver.Middleware) Option {
	return optionFunc(func(c *config) { c.middleware = append(c.middleware, mws...) })
}

// WithErrorText sets how a handler's error is written wherever it leaves
// the process: the broker's log records, the HeaderDeadLetterError header
// of dead letters, and the Error status of spans, since middleware gets
// the handler's error with this text. By default that is err.Error(),
// verbatim; when handlers return errors that quote message bodies or other
// secrets, f can redact or replace the text. errors.Is and errors.As still
// see the handler's error, so error types, retries and dead-lettering are
// unchanged. f must be safe for concurrent use; nil restores the default.
func WithErrorText(f func(error) string) Option {
	return optionFunc(func(c *config) { c.errorText = f })
}

// textError is a handler's error as WithErrorText writes it: its text is
// f's, its chain the handler's.
type textError struct {
	err  error
	text string
}

func (e *textError) Error() string { return e.text }
func (e *textError) Unwrap() error { return e.err }

// redact gives a handler's err the text WithErrorText decides, for the
// middleware and everything after it.
func (c *config) redact(err error) error {
	if err == nil || c.errorText == nil {
		return err
	}
	if _, ok := err.(*textError); ok {
		return err
	}
	return &textError{err: err, text: c.errorText(err)}
}

// errText is the text of err as WithErrorText decides.
func (c *config) errText(err error) string {
	if c.errorText == nil {
		return err.Error()
	}
	if te, ok := errors.AsType[*textError](err); ok {
		return te.text
	}
	return c.errorText(err)
}

// WithLogger sets the logger for handler failures, dropped messages and
// settle errors, and for the transport's own events unless the transport
// was given a logger of its own (see LoggerSetter). The default is
// slog.Default().
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l != nil {
			c.logger = l
		}
	})
}
