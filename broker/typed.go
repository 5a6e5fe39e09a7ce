package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"

	"github.com/tracebus/tracebus/broker/codec"
)

// Errors of the typed layer. Both are permanent: a message that does not
// decode or validate is never retried; it is dead-lettered with the reason
// or dropped with a log, per the subscription's policy.
var (
	// ErrDecode is matched by every *DecodeError.
	ErrDecode = errors.New("tracebus: decode failed")
	// ErrValidation is matched by every *ValidationError.
	ErrValidation = errors.New("tracebus: validation failed")
)

// validator is implemented by payload types that check themselves. A typed
// handler's value is validated after decoding (with a pointer or a value
// receiver); a failure is a permanent *ValidationError.
type validator interface {
	Validate() error
}

// DecodeError reports a message body that its codec could not decode into
// the handler's type. It matches ErrDecode and ErrPermanent.
type DecodeError struct {
	// ContentType is the content type of the codec that was used.
	ContentType string
	// Type is the Go type that was decoded into.
	Type reflect.Type
	// Err is the codec's error.
	Err error
}

// Error implements error.
func (e *DecodeError) Error() string {
	return fmt.Sprintf("tracebus: decode %s as %v: %v", e.ContentType, e.Type, e.Err)
}

// Unwrap returns the codec's error, ErrDecode and ErrPermanent.
func (e *DecodeError) Unwrap() []error { return []error{e.Err, ErrDecode, ErrPermanent} }

// ValidationError reports a decoded value whose Validate method failed. It
// matches ErrValidation and ErrPermanent.
type ValidationError struct {
	// Type is the Go type of the value.
	Type reflect.Type
	// Err is what Validate returned.
	Err error
}

// Error implements error.
func (e *ValidationError) Error() string {
	return fmt.Sprintf("tracebus: invalid %v: %v", e.Type, e.Err)
}

// Unwrap returns Validate's error, ErrValidation and ErrPermanent.
func (e *ValidationError) Unwrap() []error { return []error{e.Err, ErrValidation, ErrPermanent} }

// Handle registers h for the messages arriving at destination, decoded
// into T with the codec named by each message's content-type header, else
// the subscription's codec (Codec; the broker's default is JSON). A
// value of a type with a Validate method is validated. A message that does
// not decode or validate is a permanent failure: not retried, dead-lettered
// with the reason or dropped. h's result settles the message as in
// Broker.Subscribe; MessageFromContext(ctx) reaches the message itself (headers,
// key, delivery facts). Every SubscribeOption applies. r is a *Broker, or
// a *Router whose prefix and options the subscription gets.
func Handle[T any](r Registrar, destination string, h func(ctx context.Context, v T) error, opts ...SubscribeOption) error {
	if h == nil {
		return errNilHandler
	}
	rt := r.routes()
	b, cfg := rt.b, rt.subConfig(destination, false, opts)
	dec, err := newDecoder[T](b, &cfg)
	if err != nil {
		return err
	}
	return b.add(cfg, func(ctx context.Context, msgs []*Message) error {
		v, err := dec.decode(msgs[0])
		if err != nil {
			return err
		}
		return h(ctx, v)
	})
}

// HandleBatch registers h for batches of messages arriving at destination,
// each decoded into T as Handle does. Messages that do not decode or
// validate are taken out of the batch and dead-lettered (or dropped) one by
// one; h gets the rest, in delivery order, and is not called when nothing
// is left. BatchFromContext(ctx) returns the messages h got, aligned with
// vs.
func HandleBatch[T any](r Registrar, destination string, h func(ctx context.Context, vs []T) error, opts ...SubscribeOption) error {
	if h == nil {
		return errNilHandler
	}
	rt := r.routes()
	b, cfg := rt.b, rt.subConfig(destination, true, opts)
	dec, err := newDecoder[T](b, &cfg)
	if err != nil {
		return err
	}
	deadLetter, origin := cfg.deadLetter, cfg.spec.Destination
	return b.add(cfg, func(ctx context.Context, msgs []*Message) error {
		vs := make([]T, 0, len(msgs))
		var good []*Message
		for i, m := range msgs {
			v, err := dec.decode(m)
			if err == nil {
				vs = append(vs, v)
				if good != nil {
					good = append(good, m)
				}
				continue
			}
			if good == nil {
				good = append(make([]*Message, 0, len(msgs)), msgs[:i]...)
			}
			if derr := b.reject(ctx, deadLetter, origin, m, err); derr != nil {
				return derr
			}
		}
		if good != nil {
			if len(good) == 0 {
				return nil
			}
			if d := deliveryFrom(ctx); d != nil {
				d.view = good
			}
		}
		return h(ctx, vs)
	})
}

// HandleResult registers h for the messages arriving at destination,
// decoded as Handle does, and sends what h returns onward: to the reply
// address of a request (see Broker.Request), and
// to every publisher given with PublishTo, which may be on another broker
// and another system. The onward publishes use h's ctx, so they continue
// the message's trace and carry its baggage, edits included. A nil result
// (of a pointer, slice, map or interface type) sends nothing. When an
// onward publish fails, the incoming message is not acknowledged: it
// follows the retry policy.
//
// When h fails on a request (or the request does not decode), the
// requester gets an error reply instead of waiting for its deadline: a
// *ReplyError with the error's type, and its text only with ExposeErrors.
// A retryable error is answered on the last attempt only. An error that is
// a *ReplyError is the answer itself: it is sent as it is and the message
// is acknowledged.
//
// In and Out may be Envelopes: a handler returning an Envelope[T] sets the
// key, id, correlation id and headers of that one result, onward and as
// the reply (where the request's correlation id is kept); a publisher of
// the plain T takes it. See Envelope for which headers are the library's.
func HandleResult[In, Out any](r Registrar, destination string, h func(ctx context.Context, v In) (Out, error), opts ...ResultOption) error {
	if h == nil {
		return errNilHandler
	}
	var rc resultConfig
	for _, o := range opts {
		if o != nil {
			o.applyResult(&rc)
		}
	}
	rt := r.routes()
	b, cfg := rt.b, rt.subConfig(destination, false, rc.sub)
	cfg.err = cmp.Or(cfg.err, rc.err)
	dec, err := newDecoder[In](b, &cfg)
	if err != nil {
		return err
	}
	outType := valueType(reflect.TypeFor[Out]())
	for _, p := range rc.publishTo {
		if pt := p.payloadType(); !outType.AssignableTo(pt) {
			return fmt.Errorf("tracebus: subscribe %s: publisher to %s takes %v, the handler returns %v: %w",
				cfg.spec.Destination, p.destination(), pt, outType, ErrInvalid)
		}
	}
	if err := b.checkPublishToLoop(&cfg, rc.publishTo); err != nil {
		return err
	}
	cfg.endpoint.Reply = outType
	cfg.endpoint.ReplyContentType = cfg.codec.ContentType()
	nilable := canBeNil(outType)
	outEnv := isEnvelope(reflect.TypeFor[Out]())
	res := &resulter{
		env:         outEnv,
		b:           b,
		codec:       cfg.codec,
		pubs:        rc.publishTo,
		expose:      rc.expose,
		maxAttempts: cfg.maxAttempts,
		ackFirst:    cfg.ackMode == ackFirst,
	}
	return b.add(cfg, func(ctx context.Context, msgs []*Message) error {
		v, err := dec.decode(msgs[0])
		if err != nil {
			return res.fail(ctx, msgs[0], err)
		}
		out, err := h(ctx, v)
		if err != nil {
			return res.fail(ctx, msgs[0], err)
		}
		if nilable && isNilResult(out, outEnv) {
			return nil
		}
		return res.send(ctx, msgs[0], out)
	})
}

// resulter sends a handler's result onward, and its failure to the
// requester.
type resulter struct {
	b           *Broker
	codec       codec.Codec
	pubs        []ResultPublisher
	env         bool // the results are Envelopes
	expose      bool // ExposeErrors
	maxAttempts int
	ackFirst    bool
}

func (r *resulter) send(ctx context.Context, req *Message, out any) error {
	if req.ReplyTo != "" {
		var e envelopeOut
		body := out
		if r.env {
			e = out.(envelopeOut)
			body = e.envelopeValue()
		}
		b, err := r.codec.Marshal(body)
		if err != nil {
			return fmt.Errorf("tracebus: encode reply: %w", err)
		}
		reply := &Message{Body: b}
		reply.Headers.Set(HeaderContentType, r.codec.ContentType())
		if e != nil {
			// Reply sets the request's correlation id over the
			// envelope's: the requester gets back the id it sent.
			applyEnvelope(reply, e)
		}
		if err := r.b.Reply(ctx, req, reply); err != nil {
			return err
		}
	}
	for _, p := range r.pubs {
		if err := p.publishValue(ctx, out); err != nil {
			return err
		}
	}
	return nil
}

// fail answers a request whose handler failed with err, and returns what
// settles the request message.
//
// A *ReplyError is an answer the handler chose: it is sent as it is and
// the message is acknowledged. Any other error is sent as an error reply
// only when no retry follows (a permanent error, the last attempt, or
// AckFirst), so that the requester gets the outcome of the last attempt,
// not of the first; the message then follows the policy (dead letter or
// drop). Its text is sent only with ExposeErrors.
func (r *resulter) fail(ctx context.Context, req *Message, err error) error {
	if req.ReplyTo == "" {
		return err
	}
	if _, ok := errors.AsType[*ReplyError](err); ok {
		return r.b.Reply(ctx, req, errorReply(err, true))
	}
	final := r.ackFirst || errors.Is(err, ErrPermanent) || req.Delivery.DeliveryCount >= r.maxAttempts
	if !final {
		return err
	}
	if rerr := r.b.Reply(ctx, req, errorReply(err, r.expose)); rerr != nil {
		return errors.Join(err, rerr)
	}
	return err
}

// PublishTo sends what a HandleResult handler returns to each publisher, in
// order, with the handler's ctx. HandleResult fails with ErrInvalid
// when a publisher's type does not fit the handler's result type, and when
// the subscription's own pattern matches a publisher's destination on the
// same messaging system (the same broker, or a transport connected to the
// same server; see driver.SharedDestinations), since every result would
// come back to the handler. Only HandleResult takes it.
func PublishTo(pubs ...ResultPublisher) ResultOption {
	return resultOptionFunc(func(c *resultConfig) {
		for _, p := range pubs {
			if p == nil {
				c.err = cmp.Or(c.err, optionError("nil publisher"))
				return
			}
		}
		c.publishTo = append(c.publishTo, pubs...)
	})
}

// ExposeErrors makes a HandleResult subscription send the text of its
// handler's errors in error replies. By default a requester only learns the
// error's type (see ReplyError), so that internal details (SQL, hosts,
// stack traces) stay with the replier.
func ExposeErrors() ResultOption {
	return resultOptionFunc(func(c *resultConfig) { c.expose = true })
}

// isNilResult reports whether out, or its Value when Out is an Envelope
// (env), is nil; the type can be nil.
func isNilResult[Out any](out Out, env bool) bool {
	if env {
		v := reflect.ValueOf(any(out).(envelopeOut).envelopeValue())
		return !v.IsValid() || v.IsNil()
	}
	return reflect.ValueOf(&out).Elem().IsNil()
}

func canBeNil(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface, reflect.Func, reflect.Chan:
		return true
	}
	return false
}

// decoder turns message bodies into T.
type decoder[T any] struct {
	codecs codecSet
	codec  codec.Codec
	typ    reflect.Type // the type decoded into: T, or the Value's of an Envelope T
	elem   reflect.Type // T's element type when T is a pointer: decoded into a new one
	env    any          // the *decoder of the Value's type when T is an Envelope
}

func newDecoder[T any](b *Broker, cfg *subConfig) (*decoder[T], error) {
	d := makeDecoder[T](b, cfg.codec)
	typ := d.typ
	if cfg.codec == codec.Protobuf && typ.Kind() != reflect.Pointer {
		return nil, fmt.Errorf("tracebus: subscribe %s: the protobuf codec needs a pointer type (*%v), not %v: %w",
			cfg.spec.Destination, typ, typ, ErrInvalid)
	}
	cfg.endpoint.Payload = typ
	cfg.endpoint.ContentType = cfg.codec.ContentType()
	return d, nil
}

// makeDecoder returns a decoder of T whose default codec is codec.
func makeDecoder[T any](b *Broker, cd codec.Codec) *decoder[T] {
	return makeDecoderOf[T](b.cfg.codecs, cd)
}

// makeDecoderOf returns a decoder of T with codecs, whose default codec is
// cd.
func makeDecoderOf[T any](codecs codecSet, cd codec.Codec) *decoder[T] {
	typ := reflect.TypeFor[T]()
	d := &decoder[T]{codecs: codecs, codec: cd, typ: typ}
	switch {
	case isEnvelope(typ):
		d.env = any((*T)(nil)).(envelopeIn).newValueDecoder(codecs, cd)
		d.typ = valueType(typ)
	case typ.Kind() == reflect.Pointer:
		d.elem = typ.Elem()
	}
	return d
}

func (d *decoder[T]) decode(m *Message) (T, error) {
	if d.env != nil {
		var v T
		err := any(&v).(envelopeIn).decodeEnvelope(d.env, m, true)
		return v, err
	}
	v, err := d.unmarshal(m)
	if err != nil || m.Delivery.Deleted {
		return v, err
	}
	if err := validate(&v); err != nil {
		return v, &ValidationError{Type: d.typ, Err: err}
	}
	return v, nil
}

// unmarshal decodes m's body with the codec its content-type header names,
// or d.codec. A deletion (Delivery.Deleted) has no body to decode: it gives
// T's zero value, which decode does not validate.
func (d *decoder[T]) unmarshal(m *Message) (T, error) {
	var v T
	if m.Delivery.Deleted {
		return v, nil
	}
	if d.env != nil {
		err := any(&v).(envelopeIn).decodeEnvelope(d.env, m, false)
		return v, err
	}
	var target any = &v
	if d.elem != nil {
		v = reflect.New(d.elem).Interface().(T)
		target = v
	}
	c := d.codecs.pick(m.Headers.Get(HeaderContentType), d.codec)
	if err := c.Unmarshal(m.Body, target); err != nil {
		return v, &DecodeError{ContentType: c.ContentType(), Type: d.typ, Err: err}
	}
	return v, nil
}

// validate calls Validate on the value p points to, with a pointer or a
// value receiver. It never boxes a struct: for a non-pointer T the method
// is found on p, whose method set includes T's.
func validate[T any](p *T) error {
	if reflect.TypeFor[T]().Kind() == reflect.Pointer {
		v, ok := any(*p).(validator)
		if !ok || reflect.ValueOf(*p).IsNil() {
			return nil
		}
		return v.Validate()
	}
	if v, ok := any(p).(validator); ok {
		return v.Validate()
	}
	return nil
}

// reject takes an undecodable message of a batch out of it: to the
// dead-letter destination if there is one, else dropped with a log.
func (b *Broker) reject(ctx context.Context, deadLetter, origin string, m *Message, cause error) error {
	if deadLetter == "" {
		b.cfg.logger.LogAttrs(ctx, slog.LevelError, "tracebus: message of a batch rejected, dropping it",
			slog.String("destination", origin),
			messageIDAttr(m.ID),
			slog.String("error", b.cfg.errText(cause)))
		return nil
	}
	if err := b.Publish(ctx, deadLetterCopy(m, deadLetter, b.cfg.errText(cause), max(m.Delivery.DeliveryCount, 1))); err != nil {
		return fmt.Errorf("tracebus: dead-letter a rejected message of the batch: %w", err)
	}
	b.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "tracebus: message of a batch rejected, dead-lettered",
		slog.String("destination", origin),
		slog.String("dead_letter", deadLetter),
		messageIDAttr(m.ID),
		slog.String("error", b.cfg.errText(cause)))
	return nil
}
