package broker

import (
	"reflect"

	"github.com/tracebus/tracebus/broker/codec"
)

// Decode decodes msg's body into a T the way a typed subscription would,
// for code that reads messages outside a handler (tests, tools): with the
// codec its content-type header names, among the built-in codecs and
// codecs, else with codecs[0], else JSON. A pointer T gets a new value.
// Unlike a typed handler, Decode does not validate the value. A failure is
// a *DecodeError; a nil msg gives errNilMessage.
func Decode[T any](msg *Message, codecs ...codec.Codec) (T, error) {
	d := decoder[T]{codecs: defaultCodecs(), codec: codec.JSON, typ: reflect.TypeFor[T]()}
	if d.typ.Kind() == reflect.Pointer {
		d.elem = d.typ.Elem()
	}
	for i, c := range codecs {
		if c == nil {
			continue
		}
		d.codecs.add(c)
		if i == 0 {
			d.codec = c
		}
	}
	if msg == nil {
		var zero T
		return zero, errNilMessage
	}
	return d.unmarshal(msg)
}
