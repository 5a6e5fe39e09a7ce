package testutil

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/tracebus/tracebus/broker"
)

// MessageFilter narrows the messages a harness assertion looks at.
type MessageFilter struct {
	desc   string
	header string // the header the filter looks at, shown when it misses
	match  func(*broker.Message) bool
}

// Key keeps the messages whose key is k.
func Key(k string) MessageFilter {
	return MessageFilter{desc: fmt.Sprintf("key %q", k), match: func(m *broker.Message) bool { return string(m.Key) == k }}
}

// Header keeps the messages whose header name has the value v.
func Header(name, v string) MessageFilter {
	return MessageFilter{fmt.Sprintf("header %s=%q", name, v), name, func(m *broker.Message) bool {
		return m.Headers.Get(name) == v
	}}
}

// Published returns the values published to destination through the
// harness h that pass every filter, in publish order, each decoded with the
// codec its content-type header names (see broker.Decode and WithCodecs).
// A message that does not decode fails t.
func Published[T any](t testing.TB, h *Harness, destination string, filters ...MessageFilter) []T {
	t.Helper()
	msgs := filter(h.Published(destination), filters)
	return decodeAll[T](t, h, "published to "+destination, msgs)
}

// PublishedOne returns the one value published to destination that passes
// every filter, decoded as Published does, and stops the test (FailNow)
// unless there is exactly one: "published exactly one Invoice to invoices
// with key 42" is
//
//	inv := testutil.PublishedOne[Invoice](t, h, "invoices", testutil.Key("42"))
func PublishedOne[T any](t testing.TB, h *Harness, destination string, filters ...MessageFilter) T {
	t.Helper()
	m, ok := onePublished(t, h, destination, filters)
	if !ok {
		t.FailNow()
	}
	v, err := broker.Decode[T](m, h.codecs...)
	if err != nil {
		t.Fatalf("message to %s: %v", destination, err)
	}
	return v
}

// AssertPublishedOnce fails t unless exactly one message published to
// destination passes every filter and it decodes to a value equal to want
// (compared with go-cmp, protobuf messages by content). The failure shows
// the difference, or what was published instead: each message's key,
// content type, headers (the trace context and baggage headers only when a
// Header filter asks for them; a header a filter asks for and the message
// lacks as <absent>) and body.
func AssertPublishedOnce[T any](t testing.TB, h *Harness, destination string, want T, filters ...MessageFilter) {
	t.Helper()
	m, ok := onePublished(t, h, destination, filters)
	if !ok {
		return
	}
	got, err := broker.Decode[T](m, h.codecs...)
	if err != nil {
		t.Errorf("message to %s: %v", destination, err)
		return
	}
	if diff := cmp.Diff(want, got, equalOpts...); diff != "" {
		t.Errorf("the %T published to %s differs (-want +got):\n%s", want, destination, diff)
	}
}

// Handled returns the values the handlers subscribed to subscription (the
// pattern, such as "orders.*") received, in delivery order, batches
// flattened and redeliveries included, decoded as Published does. Every
// message must decode into T: on a subscription whose handlers take
// several payload types (broker.Filter), read Calls and decode with
// broker.Decode what each handler took.
func Handled[T any](t testing.TB, h *Harness, subscription string) []T {
	t.Helper()
	var msgs []*broker.Message
	for _, c := range h.Calls(subscription) {
		msgs = append(msgs, c.Messages...)
	}
	return decodeAll[T](t, h, "handled by "+subscription, msgs)
}

// AssertHandledOnce fails t unless the handlers subscribed to
// subscription were called exactly once, with one message that decodes to a
// value equal to want.
func AssertHandledOnce[T any](t testing.TB, h *Harness, subscription string, want T) {
	t.Helper()
	calls := h.Calls(subscription)
	if len(calls) != 1 || len(calls[0].Messages) != 1 {
		var b strings.Builder
		for i, c := range calls {
			fmt.Fprintf(&b, "\n  call %d: %d message(s)", i+1, len(c.Messages))
			for _, m := range c.Messages {
				b.WriteString(" ")
				b.WriteString(describe(m))
			}
			if c.Err != nil {
				fmt.Fprintf(&b, " → error %v", c.Err)
			}
		}
		t.Errorf("want the handler for %s called once with one message, got %d call(s)%s", subscription, len(calls), b.String())
		return
	}
	got, err := broker.Decode[T](calls[0].Messages[0], h.codecs...)
	if err != nil {
		t.Errorf("message handled by %s: %v", subscription, err)
		return
	}
	if diff := cmp.Diff(want, got, equalOpts...); diff != "" {
		t.Errorf("the handler for %s was called with another %T (-want +got):\n%s", subscription, want, diff)
	}
}

// equalOpts compare payloads: protobuf messages by content, unexported
// fields like exported ones.
var equalOpts = []cmp.Option{
	protocmp.Transform(),
	cmp.Exporter(func(reflect.Type) bool { return true }),
}

// onePublished returns the one message to destination passing filters, or
// reports on t what there was instead.
func onePublished(t testing.TB, h *Harness, destination string, filters []MessageFilter) (*broker.Message, bool) {
	t.Helper()
	all := h.Published(destination)
	msgs := filter(all, filters)
	if len(msgs) == 1 {
		return msgs[0], true
	}
	var what strings.Builder
	what.WriteString("message to " + destination)
	for _, f := range filters {
		what.WriteString(" with " + f.desc)
	}
	t.Errorf("want exactly one %s, got %d%s", what.String(), len(msgs), publishedReport(h, destination, all, filterHeaders(filters)))
	return nil, false
}

// filterHeaders returns the header names filters look at.
func filterHeaders(filters []MessageFilter) []string {
	var names []string
	for _, f := range filters {
		if f.header != "" {
			names = append(names, f.header)
		}
	}
	return names
}

// publishedReport lists what was published to destination, showing the
// headers named in asked among the others, or where messages went when
// nothing went there.
func publishedReport(h *Harness, destination string, msgs []*broker.Message, asked []string) string {
	var b strings.Builder
	if len(msgs) > 0 {
		fmt.Fprintf(&b, "\npublished to %s:", destination)
		for i, m := range msgs {
			fmt.Fprintf(&b, "\n  #%d %s", i+1, describe(m, asked...))
		}
		return b.String()
	}
	counts := map[string]int{}
	var order []string
	for _, m := range h.AllPublished() {
		if counts[m.Destination] == 0 {
			order = append(order, m.Destination)
		}
		counts[m.Destination]++
	}
	if len(order) == 0 {
		return "\nnothing was published at all"
	}
	fmt.Fprintf(&b, "\nnothing was published to %s; published elsewhere:", destination)
	for _, d := range order {
		fmt.Fprintf(&b, "\n  %s (%d)", d, counts[d])
	}
	return b.String()
}

// traceHeaders are the headers the harness's propagators write on every
// message: describe leaves them out unless a filter asks for one, as they
// differ on every run and say nothing about what the service published.
var traceHeaders = []string{"traceparent", "tracestate", "baggage"}

// maxShown is how many bytes of a body or a header value describe shows.
const maxShown = 200

// describe is one line about m: key, content type, the other headers, body
// (values cut short). The trace headers are left out unless named in asked;
// a header named in asked that m lacks is shown as <absent>.
func describe(m *broker.Message, asked ...string) string {
	var b strings.Builder
	if m.Key != nil {
		fmt.Fprintf(&b, "key=%q ", m.Key)
	}
	if ct := m.Headers.Get(broker.HeaderContentType); ct != "" {
		b.WriteString("content-type=" + ct + " ")
	}
	var hs []string
	for _, kv := range m.Headers {
		if strings.EqualFold(kv.Key, broker.HeaderContentType) ||
			containsFold(traceHeaders, kv.Key) && !containsFold(asked, kv.Key) {
			continue
		}
		hs = append(hs, fmt.Sprintf("%s=%q", kv.Key, shorten(kv.Value)))
	}
	for i, name := range asked {
		if _, ok := m.Headers.Lookup(name); !ok && !containsFold(asked[:i], name) {
			hs = append(hs, name+"=<absent>")
		}
	}
	if len(hs) > 0 {
		b.WriteString("headers={" + strings.Join(hs, ", ") + "} ")
	}
	fmt.Fprintf(&b, "body=%q", shorten(string(m.Body)))
	return b.String()
}

// shorten cuts s to maxShown bytes, marking the cut.
func shorten(s string) string {
	if len(s) > maxShown {
		return s[:maxShown] + "…"
	}
	return s
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func filter(msgs []*broker.Message, filters []MessageFilter) []*broker.Message {
	var out []*broker.Message
next:
	for _, m := range msgs {
		for _, f := range filters {
			if !f.match(m) {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

func decodeAll[T any](t testing.TB, h *Harness, what string, msgs []*broker.Message) []T {
	t.Helper()
	out := make([]T, 0, len(msgs))
	for i, m := range msgs {
		v, err := broker.Decode[T](m, h.codecs...)
		if err != nil {
			t.Errorf("message #%d %s: %v", i+1, what, err)
			continue
		}
		out = append(out, v)
	}
	return out
}
