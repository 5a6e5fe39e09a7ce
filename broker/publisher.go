package broker

import (
	"context"
	"fmt"
	"reflect"

	"github.com/tracebus/tracebus/broker/codec"
	"github.com/tracebus/tracebus/broker/driver"
)

// Publisher sends values of type T to one destination through a Broker:
// encoded with its codec (the broker's default unless Codec says
// otherwise), with a content-type header, an optional key derived from the
// value (KeyFunc). It publishes
// through the broker's middleware, so a Publisher used with a handler's ctx
// continues the handler's trace. A Publisher[Envelope[T]] sends T values
// with the id, key, correlation id and headers of each envelope (see
// Envelope); a partition or a reply address is set on a Message given to
// Broker.Publish.
//
// A Publisher is safe for concurrent use. Its destination appears in the
// broker's Endpoints as a publisher, once however often the same publisher
// is built.
type Publisher[T any] struct {
	b     *Broker
	dest  string
	codec codec.Codec
	ct    string
	key   func(T) string
	tmpl  *destTemplate
	param func(T, string) string
	env   bool // T is an Envelope
}

// PublisherOption configures a Publisher.
type PublisherOption interface {
	applyPublisher(*publisherConfig)
}

type publisherConfig struct {
	codec     codec.Codec
	key       any // func(T) string
	keyType   reflect.Type
	param     any // func(T, string) string
	paramType reflect.Type
	doc       endpointDoc
}

type publisherOptionFunc func(*publisherConfig)

func (f publisherOptionFunc) applyPublisher(c *publisherConfig) { f(c) }

// KeyFunc derives each message's key (the Kafka record key) from the value
// published. NATS ignores keys. Its T must be the Publisher's.
func KeyFunc[T any](fn func(v T) string) PublisherOption {
	return publisherOptionFunc(func(c *publisherConfig) {
		if fn != nil {
			c.key, c.keyType = fn, reflect.TypeFor[T]()
		}
	})
}

// ParamFunc fills the parameters of a destination template, such as the
// "{level}" of "logs.{level}", from the value published: fn returns the
// value of parameter name for v, as the mapping of os.Expand does. A
// parameter fn leaves empty (or every parameter, without ParamFunc) is
// taken from the call: the ctx of a handler of a subscription to a template
// with that parameter (see Param), so a handler of "orders.{region}.created"
// publishing to "invoices.{region}" keeps the region. Each value must be a
// single non-empty token, without ".", "*", ">", spaces or control
// characters; otherwise, and when neither gives a value, Publish fails with
// an error matching ErrInvalid and sends nothing. Its T must be the
// Publisher's.
func ParamFunc[T any](fn func(v T, name string) string) PublisherOption {
	return publisherOptionFunc(func(c *publisherConfig) {
		if fn != nil {
			c.param, c.paramType = fn, reflect.TypeFor[T]()
		}
	})
}

// NewPublisher returns a Publisher of T values to destination on r, a
// *Broker or a *Router (whose prefix the destination gets). It fails with
// an error matching ErrInvalid on a programming error: an empty
// destination, a KeyFunc for another type, or the Protobuf codec with a T
// that is not a pointer, a malformed destination template ("logs.{level}"),
// or a ParamFunc without a template. Wrap it in Must where such an error
// should panic, as wiring at start-up usually does. A template's parameters
// are filled per publish (see ParamFunc).
//
// The broker registers the publisher's endpoint the first time a publisher
// of this destination, type, codec, key and description is built; building
// the same one again adds nothing, so a publisher may be built where it is
// used, even for a single publish. Keeping it saves the build.
func NewPublisher[T any](r Registrar, destination string, opts ...PublisherOption) (*Publisher[T], error) {
	p, e, err := newPublisher[T](r, "NewPublisher", destination, opts)
	if err != nil {
		return nil, err
	}
	p.b.addPublisher(e)
	return p, nil
}

// Must returns v, and panics when err is not nil, as template.Must does:
// broker.Must(broker.NewPublisher[Invoice](b, "invoices")).
func Must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// newPublisher builds a Publisher and the Endpoint describing it, for
// NewPublisher and NewRequester; fn names the caller in panics.
func newPublisher[T any](r Registrar, fn, destination string, opts []PublisherOption) (*Publisher[T], driver.Endpoint, error) {
	if destination == "" {
		return nil, driver.Endpoint{}, fmt.Errorf("tracebus: %s: %w", fn, errEmptyDestination)
	}
	rt := r.routes()
	b, destination := rt.b, rt.destination(destination)
	cfg := publisherConfig{codec: b.cfg.codec}
	for _, o := range opts {
		if o != nil {
			o.applyPublisher(&cfg)
		}
	}
	typ := reflect.TypeFor[T]()
	p := &Publisher[T]{b: b, dest: destination, codec: cfg.codec, ct: cfg.codec.ContentType(), env: isEnvelope(typ)}
	if cfg.key != nil {
		key, ok := cfg.key.(func(T) string)
		if !ok {
			return nil, driver.Endpoint{}, fmt.Errorf("tracebus: %s[%v](%q): KeyFunc takes %v: %w", fn, typ, destination, cfg.keyType, ErrInvalid)
		}
		p.key = key
	}
	if err := p.setTemplate(cfg); err != nil {
		return nil, driver.Endpoint{}, fmt.Errorf("tracebus: %s[%v](%q): %w", fn, typ, destination, err)
	}
	if cfg.codec == codec.Protobuf && valueType(typ).Kind() != reflect.Pointer {
		return nil, driver.Endpoint{}, fmt.Errorf("tracebus: %s[%v](%q): the protobuf codec needs a pointer type: %w", fn, typ, destination, ErrInvalid)
	}
	e := driver.Endpoint{
		Kind:        driver.EndpointPublisher,
		Destination: destination,
		Payload:     valueType(typ),
		ContentType: p.ct,
	}
	cfg.doc.fill(&e)
	if p.key != nil {
		e.Key = reflect.TypeFor[string]()
	}
	return p, e, nil
}

// setTemplate parses the publisher's destination as a template and checks
// it against the ParamFunc given.
func (p *Publisher[T]) setTemplate(cfg publisherConfig) error {
	tmpl, err := parseTemplate(p.dest)
	if err != nil {
		return err
	}
	switch {
	case tmpl == nil && cfg.param != nil:
		return fmt.Errorf("ParamFunc given, but the destination has no {parameter}: %w", ErrInvalid)
	case tmpl == nil:
		return nil
	case cfg.param == nil:
		p.tmpl = tmpl // filled from the ctx of each call
		return nil
	}
	param, ok := cfg.param.(func(T, string) string)
	if !ok {
		return fmt.Errorf("ParamFunc takes %v: %w", cfg.paramType, ErrInvalid)
	}
	p.tmpl, p.param = tmpl, param
	return nil
}

// message encodes v into the message Publish sends: v's Value and
// metadata when T is an Envelope. ctx's subscription parameters fill the
// destination template where ParamFunc does not.
func (p *Publisher[T]) message(ctx context.Context, v T) (*Message, error) {
	if p.env {
		e := any(v).(envelopeOut)
		return p.encode(ctx, v, e.envelopeValue(), e)
	}
	return p.encode(ctx, v, v, nil)
}

// encode builds the message of body, v giving its key (KeyFunc) and
// destination (ParamFunc), and e, when not nil, its metadata.
func (p *Publisher[T]) encode(ctx context.Context, v T, body any, e envelopeOut) (*Message, error) {
	dest := p.dest
	if p.tmpl != nil {
		d, err := p.tmpl.fill(func(name string) string {
			if p.param != nil {
				if s := p.param(v, name); s != "" {
					return s
				}
			}
			return Param(ctx, name)
		})
		if err != nil {
			return nil, err
		}
		dest = d
	}
	b, err := p.codec.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("tracebus: encode %T for %s as %s: %w", body, p.dest, p.ct, err)
	}
	m := &Message{Destination: dest, Body: b}
	m.Headers.Set(HeaderContentType, p.ct)
	if p.key != nil {
		m.Key = []byte(p.key(v))
	}
	if e != nil {
		applyEnvelope(m, e)
	}
	return m, nil
}

// send publishes m, one message of p.
func (p *Publisher[T]) send(ctx context.Context, m *Message) error {
	if p.tmpl != nil {
		return p.b.publishFilled(ctx, p.tmpl.raw, []*Message{m}, false)
	}
	return p.b.Publish(ctx, m)
}

// Publish encodes v and sends it. With a handler's ctx, the message
// continues the handler's trace and carries its baggage.
func (p *Publisher[T]) Publish(ctx context.Context, v T) error {
	m, err := p.message(ctx, v)
	if err != nil {
		return err
	}
	return p.send(ctx, m)
}

// PublishBatch encodes vs and sends them in one batch operation. Nothing is
// sent when one of them fails to encode.
func (p *Publisher[T]) PublishBatch(ctx context.Context, vs []T) error {
	if len(vs) == 0 {
		return errEmptyBatch
	}
	msgs := make([]*Message, len(vs))
	for i, v := range vs {
		m, err := p.message(ctx, v)
		if err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		msgs[i] = m
	}
	if p.tmpl != nil {
		return p.b.publishFilled(ctx, p.tmpl.raw, msgs, true)
	}
	return p.b.PublishBatch(ctx, msgs)
}

func (p *Publisher[T]) owner() *Broker            { return p.b }
func (p *Publisher[T]) destination() string       { return p.dest }
func (p *Publisher[T]) payloadType() reflect.Type { return valueType(reflect.TypeFor[T]()) }

// publishValue publishes a HandleResult handler's result v: a T, an
// Envelope of p's value type when T is not one (its metadata kept), or
// the plain value when T is an Envelope.
func (p *Publisher[T]) publishValue(ctx context.Context, v any) error {
	if t, ok := v.(T); ok {
		return p.Publish(ctx, t)
	}
	e, isEnv := v.(envelopeOut)
	if p.env {
		var t T
		if !isEnv {
			e = nil
		} else {
			v = e.envelopeValue()
		}
		if any(&t).(envelopeIn).setEnvelope(v, e) {
			return p.Publish(ctx, t)
		}
	} else if isEnv {
		if t, ok := e.envelopeValue().(T); ok {
			m, err := p.encode(ctx, t, t, e)
			if err != nil {
				return err
			}
			return p.send(ctx, m)
		}
	}
	return fmt.Errorf("tracebus: publisher to %s takes %v, got %T: %w", p.dest, reflect.TypeFor[T](), v, ErrInvalid)
}
