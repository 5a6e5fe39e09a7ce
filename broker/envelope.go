package broker

import (
	"reflect"
	"strings"

	"github.com/tracebus/tracebus/broker/codec"
	"github.com/tracebus/tracebus/broker/driver"
)

// Envelope carries a typed value with the message metadata around it.
// Wherever the typed layer takes or returns a T, Envelope[T] may stand in
// for T: a handler's argument (Handle, HandleBatch, HandleResult's In), a
// HandleResult handler's result (a response per result: its key, id,
// correlation id and headers for that one result, onward and as a reply),
// a Publisher's value, a Requester's request and response. The value is
// encoded and decoded as T (the codec, validation and AsyncAPI payload are
// T's); the other fields travel as the message's metadata.
//
// A Publisher[T] takes an Envelope[T] from a HandleResult handler too, and
// a Publisher[Envelope[T]] a plain T.
//
// On the way in, every field is filled from the message: Headers holds all
// of its headers, the library's included, and CorrelationID its
// correlation id (on a request: the requester's, or the broker's own id
// when the requester set none).
//
// On the way out, the library's own headers win over the ones in Headers,
// which are dropped: content-type (the codec's), every "x-tracebus-"
// header (correlation id, reply address and reply matching, message id,
// error replies), and, with the telemetry middleware, the trace context
// and baggage, which are always written from the publishing ctx. ID,
// CorrelationID and Key are set from their fields when not empty; a
// non-empty Key wins over the Publisher's KeyFunc. A reply keeps the
// request's correlation id, so that the requester gets back the id it
// sent: an Envelope's CorrelationID applies to onward publishes only.
// Headers copied from an incoming message carry every header it had,
// those its sender's other tools wrote included: copy the ones you mean.
// The message id is not among them (it is ID, and an onward message gets
// its own).
type Envelope[T any] struct {
	// Value is the payload, encoded and decoded as T.
	Value T
	// Key is the Kafka record key. NATS ignores it.
	Key string
	// ID is the message id (Message.ID).
	ID string
	// CorrelationID is the message's correlation id (the
	// driver.HeaderCorrelationID header).
	CorrelationID string
	// Headers are the message's headers: on the way in all of them, on the
	// way out the extra ones to send.
	Headers Headers
}

// envelopeOut is implemented by every Envelope: code that holds a value as
// any, or as a type parameter, takes an envelope apart through it.
type envelopeOut interface {
	envelopeValue() any
	envelopeMeta() (key, id, correlationID string, h Headers)
}

// envelopeIn is implemented by every *Envelope: the typed layer decodes
// into one, and fills one, through it.
type envelopeIn interface {
	// newValueDecoder returns the *decoder of the envelope's T.
	newValueDecoder(codecs codecSet, def codec.Codec) any
	// decodeEnvelope fills the envelope from m with dec, the decoder
	// newValueDecoder returned; check validates the value.
	decodeEnvelope(dec any, m *Message, check bool) error
	// setEnvelope sets the envelope's value to v, and its metadata to
	// src's when src is not nil; it reports whether v is a T.
	setEnvelope(v any, src envelopeOut) bool
}

func (e Envelope[T]) envelopeValue() any { return e.Value }

func (e Envelope[T]) envelopeMeta() (key, id, correlationID string, h Headers) {
	return e.Key, e.ID, e.CorrelationID, e.Headers
}

func (*Envelope[T]) newValueDecoder(codecs codecSet, def codec.Codec) any {
	return makeDecoderOf[T](codecs, def)
}

func (e *Envelope[T]) decodeEnvelope(dec any, m *Message, check bool) error {
	d := dec.(*decoder[T])
	var err error
	if check {
		e.Value, err = d.decode(m)
	} else {
		e.Value, err = d.unmarshal(m)
	}
	e.Key = string(m.Key)
	e.ID = m.ID
	e.CorrelationID = m.Headers.Get(driver.HeaderCorrelationID)
	// A copy: a handler that edits its envelope's headers, or sends them
	// on, must not change the message a retry or the telemetry reads.
	e.Headers = m.Headers.Clone()
	return err
}

func (e *Envelope[T]) setEnvelope(v any, src envelopeOut) bool {
	t, ok := v.(T)
	if !ok {
		return false
	}
	e.Value = t
	if src != nil {
		e.Key, e.ID, e.CorrelationID, e.Headers = src.envelopeMeta()
	}
	return true
}

var (
	envelopeOutType = reflect.TypeFor[envelopeOut]()
	envelopeInType  = reflect.TypeFor[envelopeIn]()
)

// isEnvelope reports whether typ is an Envelope type.
func isEnvelope(typ reflect.Type) bool {
	return typ.Kind() == reflect.Struct && typ.Implements(envelopeOutType) && reflect.PointerTo(typ).Implements(envelopeInType)
}

// valueType is typ, or the type of its Value when typ is an Envelope: the
// type a codec encodes and an AsyncAPI document shows.
func valueType(typ reflect.Type) reflect.Type {
	if isEnvelope(typ) {
		return typ.Field(0).Type
	}
	return typ
}

// libraryHeader reports whether key names a header the library writes
// itself, which an Envelope's Headers cannot set.
func libraryHeader(key string) bool {
	const prefix = "x-tracebus-"
	return strings.EqualFold(key, HeaderContentType) ||
		len(key) >= len(prefix) && strings.EqualFold(key[:len(prefix)], prefix)
}

// applyEnvelope sets the metadata of e on m, the library's own headers
// (set on m before or after) winning over e's Headers.
func applyEnvelope(m *Message, e envelopeOut) {
	key, id, corr, h := e.envelopeMeta()
	if len(h) > 0 {
		own := m.Headers
		m.Headers = make(Headers, 0, len(own)+len(h)+1)
		for _, kv := range h {
			if !libraryHeader(kv.Key) {
				m.Headers = append(m.Headers, kv)
			}
		}
		for _, kv := range own {
			m.Headers.Set(kv.Key, kv.Value)
		}
	}
	if key != "" {
		m.Key = []byte(key)
	}
	if id != "" {
		m.ID = id
	}
	if corr != "" {
		m.Headers.Set(driver.HeaderCorrelationID, corr)
	}
}
