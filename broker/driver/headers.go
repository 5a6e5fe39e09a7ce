package driver

import "strings"

// Header is one message header. Values are strings; Kafka header values are
// bytes and are converted without change.
type Header struct {
	Key   string
	Value string
}

// Headers is an ordered list of message headers.
//
// Keys keep the case they were written with, and lookups ignore case, so a
// "traceparent" written by another language and a "Traceparent" written by
// net/http-style code are the same header. A key may appear more than once
// (Kafka allows it): Get returns the first value, Values returns all of them
// in order, Set replaces all of them, and Add appends another.
//
// When a key appears in several cases ("traceparent" and "TRACEPARENT"),
// reads prefer the exact case asked for: Get and Lookup return the first
// value written with exactly that key, and only without one the first
// written in another case; Values lists the exact-case values first. The
// rule is the same whatever order the transport delivers headers in (NATS
// sorts keys, Kafka keeps their order), and propagation, which asks for
// lower-case keys, reads the lower-case header that other languages write.
//
// *Headers implements OpenTelemetry's propagation.TextMapCarrier and
// propagation.ValuesGetter, so a propagator can inject into and extract from
// message headers directly.
//
// The zero value is an empty list ready to use.
type Headers []Header

// Get returns the value for key, compared case-insensitively, preferring
// the exact case (see Headers), or "" when there is none.
func (h Headers) Get(key string) string {
	v, _ := h.Lookup(key)
	return v
}

// Lookup is like Get but also reports whether key is present.
func (h Headers) Lookup(key string) (string, bool) {
	found := -1
	for i := range h {
		if h[i].Key == key {
			return h[i].Value, true
		}
		if found < 0 && strings.EqualFold(h[i].Key, key) {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return h[found].Value, true
}

// Values returns every value for key, compared case-insensitively: those
// written with exactly key first, then the other cases, each in order.
func (h Headers) Values(key string) []string {
	var vs []string
	other := 0
	for i := range h {
		if h[i].Key == key {
			vs = append(vs, h[i].Value)
		} else if strings.EqualFold(h[i].Key, key) {
			other++
		}
	}
	if other == 0 {
		return vs
	}
	for i := range h {
		if h[i].Key != key && strings.EqualFold(h[i].Key, key) {
			vs = append(vs, h[i].Value)
		}
	}
	return vs
}

// Set replaces every value of key with value. The key keeps the case given
// here. When key is absent it is appended.
func (h *Headers) Set(key, value string) {
	list := *h
	for i := range list {
		if strings.EqualFold(list[i].Key, key) {
			list[i] = Header{Key: key, Value: value}
			// Drop later duplicates in place.
			out := list[:i+1]
			for _, kv := range list[i+1:] {
				if !strings.EqualFold(kv.Key, key) {
					out = append(out, kv)
				}
			}
			clear(list[len(out):])
			*h = out
			return
		}
	}
	*h = append(list, Header{Key: key, Value: value})
}

// Add appends value under key, keeping values already present.
func (h *Headers) Add(key, value string) {
	*h = append(*h, Header{Key: key, Value: value})
}

// Del removes every value of key.
func (h *Headers) Del(key string) {
	list := *h
	out := list[:0]
	for _, kv := range list {
		if !strings.EqualFold(kv.Key, key) {
			out = append(out, kv)
		}
	}
	clear(list[len(out):])
	*h = out
}

// Keys returns the distinct keys, in order of first appearance, with the case
// of their first appearance.
func (h Headers) Keys() []string {
	keys := make([]string, 0, len(h))
next:
	for _, kv := range h {
		for _, k := range keys {
			if strings.EqualFold(k, kv.Key) {
				continue next
			}
		}
		keys = append(keys, kv.Key)
	}
	return keys
}

// Len returns the number of headers, duplicates included.
func (h Headers) Len() int { return len(h) }

// Clone returns a copy of h that shares no storage with it.
func (h Headers) Clone() Headers {
	if h == nil {
		return nil
	}
	return append(make(Headers, 0, len(h)), h...)
}

// Headers of request/reply. Transports that cannot carry a reply address
// natively (Kafka, JetStream) carry Message.ReplyTo in HeaderReplyTo.
const (
	// HeaderCorrelationID holds a request's correlation id: the one its
	// caller set, else the broker's own id of the request. Reply copies it
	// from the request into the reply. A reply is matched to its request
	// by the broker's own id only, never by a caller's: a transport with
	// reply subjects by the inbox token (Inbox.ReplyTo), one without
	// (Kafka) by the "x-tracebus-reply-id" header, which Request adds
	// when the caller chose the correlation id and Reply copies, else by
	// this header.
	HeaderCorrelationID = "x-tracebus-correlation-id"
	// HeaderReplyTo carries Message.ReplyTo where the system has no reply
	// address of its own.
	HeaderReplyTo = "x-tracebus-reply-to"
	// HeaderReplyError marks an error reply. Its value is the
	// low-cardinality error type; the body holds the error text when the
	// replier chose to send it, and is empty otherwise.
	HeaderReplyError = "x-tracebus-reply-error"
)

// HeaderMessageID carries Message.ID on transports whose messages have no
// id field of their own (Kafka records). NATS uses its Nats-Msg-Id header,
// which JetStream de-duplicates by; the memory transport copies the field.
const HeaderMessageID = "x-tracebus-message-id"
