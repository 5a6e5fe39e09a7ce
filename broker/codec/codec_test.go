package codec_test

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tracebus/tracebus/broker/codec"
)

// Each built-in codec gives back what it encoded, names its content type,
// and refuses a value it cannot carry with an error rather than a panic.
func TestBuiltInCodecsRoundTrip(t *testing.T) {
	pb, err := structpb.NewStruct(map[string]any{"id": "1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		c           codec.Codec
		contentType string
		in          any
		out         func() any
		read        func(any) string
	}{
		{codec.JSON, "application/json", map[string]int{"n": 1}, func() any { return &map[string]int{} },
			func(v any) string { return fmt.Sprint(*v.(*map[string]int)) }},
		{codec.Protobuf, "application/protobuf", pb, func() any { return &structpb.Struct{} },
			func(v any) string { return v.(*structpb.Struct).Fields["id"].GetStringValue() }},
		{codec.Bytes, "application/octet-stream", []byte("raw"), func() any { return new([]byte) },
			func(v any) string { return string(*v.(*[]byte)) }},
		{codec.Text, "text/plain; charset=utf-8", "hello", func() any { return new(string) },
			func(v any) string { return *v.(*string) }},
	}
	want := []string{"map[n:1]", "1", "raw", "hello"}
	for i, tc := range tests {
		if got := tc.c.ContentType(); got != tc.contentType {
			t.Errorf("content type %q, want %q", got, tc.contentType)
		}
		body, err := tc.c.Marshal(tc.in)
		if err != nil {
			t.Fatalf("%s: marshal: %v", tc.contentType, err)
		}
		out := tc.out()
		if err := tc.c.Unmarshal(body, out); err != nil {
			t.Fatalf("%s: unmarshal: %v", tc.contentType, err)
		}
		if got := tc.read(out); got != want[i] {
			t.Errorf("%s: round trip gave %q, want %q", tc.contentType, got, want[i])
		}
	}
	for _, c := range []codec.Codec{codec.Protobuf, codec.Bytes, codec.Text} {
		if _, err := c.Marshal(42); err == nil {
			t.Errorf("%s: marshal of an int succeeded", c.ContentType())
		}
		if err := c.Unmarshal([]byte("x"), new(int)); err == nil {
			t.Errorf("%s: unmarshal into *int succeeded", c.ContentType())
		}
	}
}
