package broker

import (
	"github.com/tracebus/tracebus/broker/codec"
)

// Decode decodes msg's body into a T the way a typed subscription would,
// for code that reads messages outside a handler (tests, tools): with the
// codec its content-type header names, among the built-in codecs and
// codecs, else with codecs[0], else JSON. A pointer T gets a new value.
// Unlike a typed handler, Decode does not validate the value. A failure is
// a *DecodeError; a nil msg gives errNilMessage. An Envelope T gets the
// message's metadata too.
func Decode[T any](msg *Message, codecs ...codec.Codec) (T, error) {
	cs, def := defaultCodecs(), codec.JSON
	for i, c := range codecs {
		if c == nil {
			continue
		}
		cs.add(c)
		if i == 0 {
			def = c
		}
	}
	d := makeDecoderOf[T](cs, def)
	if msg == nil {
		var zero T
		return zero, errNilMessage
	}
	return d.unmarshal(msg)
}
