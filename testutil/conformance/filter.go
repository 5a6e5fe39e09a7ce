package conformance

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/internal/testkit"
)

// filterA and filterB are the payloads of two handlers that share one
// subscription through filters.
type filterA struct {
	A string `json:"a"`
}

type filterB struct {
	B string `json:"b"`
}

// testFilters registers two typed handlers with filters on one destination,
// group and name, without a default: each message reaches the handler its
// "kind" header selects, once, decoded into that handler's type; a message
// neither takes is dead-lettered with the reason, not acknowledged unseen.
func testFilters(t *testing.T, s Suite) {
	dest := s.Destination(t)
	dlq := s.Destination(t) + "-dlq"
	if s.Prepare != nil {
		s.Prepare(t, dlq)
	}
	b := s.Broker(t)
	in := testkit.NewInbox[string](s.Wait())
	kind := func(k string) broker.SubscribeOption {
		return broker.Filter(func(m *broker.Message) bool { return m.Headers.Get("kind") == k })
	}
	shared := func(k string) []broker.SubscribeOption {
		return s.Options(kind(k), broker.Group("g"), broker.Name("g"), broker.MaxAttempts(1), broker.DeadLetter(dlq))
	}
	if err := broker.Handle(b, dest, func(_ context.Context, v filterA) error {
		in.Put("a:" + v.A)
		return nil
	}, shared("a")...); err != nil {
		t.Fatal(err)
	}
	if err := broker.Handle(b, dest, func(_ context.Context, v filterB) error {
		in.Put("b:" + v.B)
		return nil
	}, shared("b")...); err != nil {
		t.Fatal(err)
	}
	dead := collectDeadLetters(t, s, b, dlq)
	s.Start(t, b)

	send := func(k, body string) {
		t.Helper()
		m := &broker.Message{Destination: dest, Body: []byte(body)}
		m.Headers.Set("kind", k)
		m.Headers.Set(broker.HeaderContentType, "application/json")
		if s.Features.Keys {
			m.Key = []byte("k") // one partition: the marker comes last
		}
		if err := b.Publish(context.Background(), m); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	send("a", `{"a":"1"}`)
	send("b", `{"b":"2"}`)
	send("c", `{"c":"3"}`)
	send("a", `{"a":"4"}`)
	got := in.TakeN(t, 3)
	slices.Sort(got)
	if want := []string{"a:1", "a:4", "b:2"}; !slices.Equal(got, want) {
		t.Fatalf("handled %q, want %q", got, want)
	}
	d := dead.Next(t)
	if string(d.Body) != `{"c":"3"}` || d.Headers.Get(broker.HeaderDeadLetterOrigin) != dest ||
		!strings.Contains(d.Headers.Get(broker.HeaderDeadLetterError), "no handler") {
		t.Errorf("dead letter %q with headers %v, want the unmatched message with the reason", d.Body, d.Headers)
	}
	// Each message once: nothing else arrives before a marker.
	send("b", `{"b":"marker"}`)
	if v := in.Next(t); v != "b:marker" {
		t.Fatalf("got %q before the marker: a message was handled twice", v)
	}
	if n := dead.Len(); n != 0 {
		t.Errorf("%d more dead letters", n)
	}
}
