package broker

import (
	"strings"

	"github.com/tracebus/tracebus/broker/codec"
)

// HeaderContentType is the header a typed publish writes with its codec's
// content type, and a typed subscription reads to choose the codec that
// decodes a message.
const HeaderContentType = "content-type"

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
type codecSet map[string]codec.Codec

func defaultCodecs() codecSet {
	cs := codecSet{}
	for _, c := range []codec.Codec{codec.JSON, codec.Protobuf, codec.Bytes, codec.Text} {
		cs.add(c)
	}
	cs["application/x-protobuf"] = codec.Protobuf
	cs["application/vnd.google.protobuf"] = codec.Protobuf
	return cs
}

func (cs codecSet) add(c codec.Codec) { cs[mediaType(c.ContentType())] = c }

// pick returns the codec for a message with the given content-type header:
// the one the header names when the broker knows it, else def. A header
// naming an unknown type falls back to def as well, so a producer that
// labels its JSON "text/json" is still understood; if def cannot read the
// body the decode error says which content type the message declared.
func (cs codecSet) pick(contentType string, def codec.Codec) codec.Codec {
	if contentType == "" || contentType == def.ContentType() {
		return def
	}
	if c, ok := cs[mediaType(contentType)]; ok {
		return c
	}
	return def
}
