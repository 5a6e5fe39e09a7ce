// Package codec turns the values of typed handlers and publishers into
// message bodies and back.
//
// A Codec names its content type, which a typed publish writes to the
// content-type header and a typed subscription reads to pick the codec
// that decodes a message. JSON is the default; Protobuf, Bytes and Text
// are built in, and every broker knows all four, so a message whose
// content-type names one of them is decoded with it whatever codec the
// subscription was given:
//
//	b := broker.New(tr, broker.WithCodec(codec.Protobuf)) // the broker's default
//	broker.Handle(b, "audit", h, codec.Codec(codec.Text)) // one subscription's
//
// A codec of your own implements the three methods of Codec.
package codec
