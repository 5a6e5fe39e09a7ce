package natsbroker

import (
	"slices"

	natsgo "github.com/nats-io/nats.go"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
)

// natsHeader converts h to a NATS header, keeping every key exactly as
// written: nats.Header is a case-sensitive map, and a "traceparent" written
// here must arrive as "traceparent", not "Traceparent". Repeated keys keep
// all their values in order. id, when set, becomes the Nats-Msg-Id header
// and wins over one in h.
//
// Keys NATS cannot carry (empty, or holding spaces, control characters,
// colons or the other characters ADR-4 forbids) would make nats.go reject
// the whole message; they are dropped and reported through drop instead, so
// that a hostile header forwarded from elsewhere never costs the message.
// Values need no check: nats.go replaces CR and LF and trims spaces.
func natsHeader(h broker.Headers, id string, drop func(key string)) natsgo.Header {
	if len(h) == 0 && id == "" {
		return nil
	}
	n := len(h)
	if id != "" {
		n++
	}
	out := make(natsgo.Header, n)
	fillNATSHeader(out, n, h, id, drop)
	return out
}

// fillNATSHeader does the work of natsHeader into out, which the caller
// sized for n values; a caller whose header does not outlive the publish
// can keep out on its stack.
func fillNATSHeader(out natsgo.Header, n int, h broker.Headers, id string, drop func(key string)) {
	// One backing array for every value: each key gets a one-value window
	// of it, and only a repeated key grows its own slice.
	values := make([]string, 0, n)
	for _, kv := range h {
		if !validHeaderKey(kv.Key) {
			drop(kv.Key)
			continue
		}
		if vs, ok := out[kv.Key]; ok {
			out[kv.Key] = append(vs, kv.Value)
			continue
		}
		values = append(values, kv.Value)
		out[kv.Key] = values[len(values)-1 : len(values) : len(values)]
	}
	if id != "" {
		values = append(values, id)
		out[natsgo.MsgIdHdr] = values[len(values)-1 : len(values) : len(values)]
	}
}

// validHeaderKey mirrors nats.go's check: printable ASCII without the
// separators of ADR-4.
func validHeaderKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c < 33 || c > 126 {
			return false
		}
		switch c {
		case '"', '(', ')', '/', ',', ':', ';', '<', '=', '>', '?', '@', '[', '\\', ']', '{', '}':
			return false
		}
	}
	return true
}

// brokerHeaders converts a received NATS header. Keys keep their case; as a
// map has no order, keys are sorted so that deliveries are deterministic,
// and the values of one key keep their order. The Nats-Msg-Id header is left
// out: it is the message's ID (Message.ID), not one of its headers.
func brokerHeaders(h natsgo.Header) broker.Headers {
	if len(h) == 0 {
		return nil
	}
	var buf [16]string
	keys := buf[:0]
	n := 0
	for k, vs := range h {
		if k == natsgo.MsgIdHdr {
			continue
		}
		keys = append(keys, k)
		n += len(vs)
	}
	if len(keys) == 0 {
		return nil
	}
	slices.Sort(keys)
	out := make(broker.Headers, 0, n)
	for _, k := range keys {
		for _, v := range h[k] {
			out = append(out, driver.Header{Key: k, Value: v})
		}
	}
	return out
}
