package codec

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"
)

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
		return nil, fmt.Errorf("codec: protobuf: %T is not a proto.Message", v)
	}
	return proto.Marshal(m)
}

func (protoCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("codec: protobuf: %T is not a proto.Message", v)
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
	return nil, fmt.Errorf("codec: bytes: %T is not []byte", v)
}

func (bytesCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("codec: bytes: cannot decode into %T", v)
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
	return nil, fmt.Errorf("codec: text: %T is not a string", v)
}

func (textCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*string)
	if !ok {
		return fmt.Errorf("codec: text: cannot decode into %T", v)
	}
	*p = string(data)
	return nil
}
