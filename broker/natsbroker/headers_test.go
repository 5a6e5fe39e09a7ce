package natsbroker

import (
	"slices"
	"testing"

	natsgo "github.com/nats-io/nats.go"
	"github.com/tracebus/tracebus/broker"
)

func TestNATSHeaderKeepsKeys(t *testing.T) {
	var h broker.Headers
	h.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	h.Set("X-Mixed-Case", "v")
	h.Add("x-dup", "one")
	h.Add("x-dup", "two")
	var dropped []string
	got := natsHeader(h, "id-1", func(k string) { dropped = append(dropped, k) })
	want := natsgo.Header{
		"traceparent":  {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		"X-Mixed-Case": {"v"},
		"x-dup":        {"one", "two"},
		"Nats-Msg-Id":  {"id-1"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, vs := range want {
		if !slices.Equal(got[k], vs) {
			t.Errorf("%s = %q, want %q", k, got[k], vs)
		}
	}
	if len(dropped) != 0 {
		t.Errorf("dropped %q", dropped)
	}
	if natsHeader(nil, "", nil) != nil {
		t.Error("no headers and no id must give a nil header")
	}
}

func TestNATSHeaderDropsWhatNATSCannotCarry(t *testing.T) {
	bad := []string{"", "has space", "colon:key", "new\r\nline", "tab\tkey", "ünïcode", "slash/key", "del\x7f"}
	var h broker.Headers
	for _, k := range bad {
		h.Add(k, "v")
	}
	h.Add("x-good", "kept")
	var dropped []string
	got := natsHeader(h, "", func(k string) { dropped = append(dropped, k) })
	if !slices.Equal(dropped, bad) {
		t.Errorf("dropped %q, want %q", dropped, bad)
	}
	if len(got) != 1 || got.Get("x-good") != "kept" {
		t.Errorf("got %v, want only x-good", got)
	}
	// What is left must be acceptable to nats.go.
	for k := range got {
		if !validHeaderKey(k) {
			t.Errorf("kept invalid key %q", k)
		}
	}
}

func TestBrokerHeadersSortedAndComplete(t *testing.T) {
	h := natsgo.Header{"b": {"1", "2"}, "A": {"x"}, "traceparent": {"t"}}
	got := brokerHeaders(h)
	want := broker.Headers{{Key: "A", Value: "x"}, {Key: "b", Value: "1"}, {Key: "b", Value: "2"}, {Key: "traceparent", Value: "t"}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if brokerHeaders(nil) != nil {
		t.Error("nil header must give nil headers")
	}
}
