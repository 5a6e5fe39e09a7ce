package broker

import (
	"encoding/json"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
)

// HeaderContentType is the header a typed publish writes with its codec's
// content type, and a typed subscription reads to choose the codec that
// decodes a message.
const HeaderContentType = "content-type"

// Codec turns values into message bodies and back. Typed handlers and
// publishers use one; the byte-level API never does.
type Codec interface {
	// ContentType is the media type written to the content-type header,
	// such as "application/json".
	ContentType() string
	// Marshal encodes v.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a non-nil pointer.
	Unmarshal(data []byte, v any) error
}

// The codecs tracebus provides. Every broker knows them, so a message
// whose content-type header names one of them is decoded with it whatever
// the subscription's codec.
var (
	// JSON encodes with encoding/json, as application/json. It is the
	// default codec.
	JSON Codec = jsonCodec{}
	// Protobuf encodes proto.Message values (pointers to generated types)
	// with google.golang.org/protobuf, as application/protobuf.
	Protobuf Codec = protoCodec{}
	// Bytes passes []byte bodies through unchanged, as
	// application/octet-stream.
	Bytes Codec = bytesCodec{}
	// Text passes string bodies through unchanged, as text/plain with
	// charset utf-8.
	Text Codec = textCodec{}
)

type jsonCodec struct{}

func (jsonCodec) ContentType() string                { return "application/json" }
func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

type protoCodec struct{}

func (protoCodec) ContentType() string { return "application/protobuf" }

func (protoCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("protobuf: %T is not a proto.Message", v)
	}
	return proto.Marshal(m)
}

func (protoCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("protobuf: %T is not a proto.Message", v)
	}
	return proto.Unmarshal(data, m)
}

type bytesCodec struct{}

func (bytesCodec) ContentType() string { return "application/octet-stream" }

func (bytesCodec) Marshal(v any) ([]byte, error) {
	switch b := v.(type) {
	case []byte:
		return b, nil
	case *[]byte:
		return *b, nil
	}
	return nil, fmt.Errorf("bytes codec: %T is not []byte", v)
}

func (bytesCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("bytes codec: cannot decode into %T", v)
	}
	*p = append((*p)[:0], data...)
	return nil
}

type textCodec struct{}

func (textCodec) ContentType() string { return "text/plain; charset=utf-8" }

func (textCodec) Marshal(v any) ([]byte, error) {
	switch s := v.(type) {
	case string:
		return []byte(s), nil
	case *string:
		return []byte(*s), nil
	}
	return nil, fmt.Errorf("text codec: %T is not a string", v)
}

func (textCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*string)
	if !ok {
		return fmt.Errorf("text codec: cannot decode into %T", v)
	}
	*p = string(data)
	return nil
}

// mediaType is the lower-case media type of a content type, without
// parameters: "Application/JSON; charset=utf-8" → "application/json".
func mediaType(contentType string) string {
	if i := strings.IndexByte(contentType, ';'); i >= 0 {
		contentType = contentType[:i]
	}
	return strings.ToLower(strings.TrimSpace(contentType))
}

// codecSet finds codecs by content type: the built-in ones and those given
// to the broker.
type codecSet map[string]Codec

func defaultCodecs() codecSet {
	cs := codecSet{}
	for _, c := range []Codec{JSON, Protobuf, Bytes, Text} {
		cs.add(c)
	}
	cs["application/x-protobuf"] = Protobuf
	cs["application/vnd.google.protobuf"] = Protobuf
	return cs
}

func (cs codecSet) add(c Codec) { cs[mediaType(c.ContentType())] = c }

// pick returns the codec for a message with the given content-type header:
// the one the header names when the broker knows it, else def. A header
// naming an unknown type falls back to def as well, so a producer that
// labels its JSON "text/json" is still understood; if def cannot read the
// body the decode error says which content type the message declared.
func (cs codecSet) pick(contentType string, def Codec) Codec {
	if contentType == "" || contentType == def.ContentType() {
		return def
	}
	if c, ok := cs[mediaType(contentType)]; ok {
		return c
	}
	return def
}

// EndpointOption sets the codec of typed handlers and publishers. Given to New
// it is the broker's default (and is known for decoding by content type);
// given to a typed subscribe function or NewPublisher it applies there.
type EndpointOption struct{ c Codec }

// WithCodec returns a CodecOption for c. A nil codec keeps the default.
func WithCodec(c Codec) EndpointOption { return EndpointOption{c} }

func (o EndpointOption) applyBroker(c *config) {
	if o.c != nil {
		c.codec = o.c
		c.codecs.add(o.c)
	}
}

func (o EndpointOption) applySubscribe(c *subConfig) {
	if o.c != nil {
		c.codec = o.c
	}
}

func (o EndpointOption) applyPublisher(c *publisherConfig) {
	if o.c != nil {
		c.codec = o.c
	}
}
