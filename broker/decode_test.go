package broker_test

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/codec"
)

type plainCodec struct{}

func (plainCodec) ContentType() string { return "application/x-plain" }
func (plainCodec) Marshal(v any) ([]byte, error) {
	return []byte(v.(string)), nil
}
func (plainCodec) Unmarshal(data []byte, v any) error {
	*v.(*string) = "plain:" + string(data)
	return nil
}

// Decode picks the codec from the content-type header, like a typed
// subscription, and falls back to its first codec, then JSON.
func TestDecode(t *testing.T) {
	pb, err := structpb.NewStruct(map[string]any{"id": "o-1"})
	must(t, err)
	body, err := proto.Marshal(pb)
	must(t, err)
	m := &broker.Message{Body: body}
	m.Headers.Set(broker.HeaderContentType, "application/protobuf")
	got, err := broker.Decode[*structpb.Struct](m)
	must(t, err)
	if !proto.Equal(got, pb) {
		t.Errorf("protobuf: got %v", got)
	}

	js := &broker.Message{Body: []byte(`"hello"`)}
	if s, err := broker.Decode[string](js); err != nil || s != "hello" {
		t.Errorf("JSON without header: %q, %v", s, err)
	}
	if s, err := broker.Decode[string](js, plainCodec{}); err != nil || s != `plain:"hello"` {
		t.Errorf("first codec as fallback: %q, %v", s, err)
	}
	js.Headers.Set(broker.HeaderContentType, "application/x-plain")
	if s, err := broker.Decode[string](js, codec.JSON, plainCodec{}); err != nil || s != `plain:"hello"` {
		t.Errorf("custom codec by header: %q, %v", s, err)
	}

	bad := &broker.Message{Body: []byte("{")}
	var de *broker.DecodeError
	if _, err := broker.Decode[map[string]any](bad); !errors.As(err, &de) || de.ContentType != "application/json" {
		t.Errorf("bad JSON: %v", err)
	}
	if _, err := broker.Decode[string](nil); !errors.Is(err, broker.ErrInvalid) {
		t.Errorf("nil message: %v", err)
	}
}
