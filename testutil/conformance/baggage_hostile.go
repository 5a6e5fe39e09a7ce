package conformance

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"

	"github.com/tracebus/tracebus/baggage"
	"github.com/tracebus/tracebus/broker"
)

// hostileBaggage is a baggage header from the network and what a handler
// sees of it with each propagator. A nil expectation means the propagator
// gives no deterministic result; then the handler must still run and see a
// subset of the members within the W3C limits.
type hostileBaggage struct {
	name    string
	key     string   // header key, "baggage" when empty
	values  []string // one header per value
	w3c     map[string]string
	ours    map[string]string
	members map[string]string // every member the headers hold, for subsets
}

func hostileBaggageCases() []hostileBaggage {
	numbered := func(n int) (list []string, members map[string]string) {
		members = map[string]string{}
		for i := range n {
			k := fmt.Sprintf("k%02d", i)
			list = append(list, k+"=v")
			members[k] = "v"
		}
		return list, members
	}
	m65, all65 := numbered(65)
	_, first64 := numbered(64)

	big := strings.Repeat("x", 2500)
	tenKB := "a=" + big + ",b=" + big + ",c=" + big + ",d=" + big + ",e=small"
	return []hostileBaggage{
		{
			name: "65Members", values: []string{strings.Join(m65, ",")},
			// otel-go stops parsing a header after 64 members.
			w3c: first64, ours: first64, members: all65,
		},
		{
			name: "65MembersInTwoHeaders", values: []string{strings.Join(m65[:40], ","), strings.Join(m65[40:], ",")},
			// otel-go merges several headers through a map and drops a
			// random member; baggage.Propagator drops from the end.
			w3c: nil, ours: first64, members: all65,
		},
		{
			name: "10KBHeader", values: []string{tenKB},
			// otel-go drops a header over 8192 bytes entirely;
			// baggage.Propagator keeps the members that fit, in order.
			w3c:     map[string]string{},
			ours:    map[string]string{"a": big, "b": big, "c": big, "e": "small"},
			members: map[string]string{"a": big, "b": big, "c": big, "d": big, "e": "small"},
		},
		{
			name:   "MalformedSyntax",
			values: []string{`novalue,=v,k v=1,good=1,,;;,x=1;p q,q="quoted",` + "u=\xff\xfe"},
			w3c:    map[string]string{"good": "1"}, ours: map[string]string{"good": "1"},
		},
		{
			name:   "InvalidPercentEncoding",
			values: []string{"bad=%zz,half=%4,ok=%41,tail=%"},
			w3c:    map[string]string{"ok": "A"}, ours: map[string]string{"ok": "A"},
		},
		{
			name: "UpperCaseHeaderKey", key: "BAGGAGE", values: []string{"foo=bar"},
			w3c: map[string]string{"foo": "bar"}, ours: map[string]string{"foo": "bar"},
		},
	}
}

// testBaggageHostile sends hostile baggage headers through a broker without
// middleware (so they arrive as written) to handlers behind the Telemetry
// middleware, with the plain W3C propagator and with baggage.Propagator.
// Every message is handled, twice with the same result, and nothing panics.
func testBaggageHostile(t *testing.T, s Suite) {
	props := []struct {
		name string
		prop propagation.TextMapPropagator
		want func(hostileBaggage) map[string]string
	}{
		{"W3C", bagW3C, func(c hostileBaggage) map[string]string { return c.w3c }},
		{"Propagator", propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, baggage.Propagator{}),
			func(c hostileBaggage) map[string]string { return c.ours }},
	}
	for _, p := range props {
		t.Run(p.name, func(t *testing.T) {
			dest := s.Destination(t)
			b := baggageBroker(t, s, p.prop)
			in := subscribeBaggage(t, s, b, dest)
			s.Start(t, b)
			raw := s.Broker(t)

			cases := hostileBaggageCases()
			for _, c := range cases {
				key := c.key
				if key == "" {
					key = "baggage"
				}
				for i := range 2 {
					m := &broker.Message{Destination: dest, Body: []byte(fmt.Sprintf("%s/%d", c.name, i))}
					for _, v := range c.values {
						m.Headers.Add(key, v)
					}
					if err := raw.Publish(context.Background(), m); err != nil {
						t.Fatalf("%s: publish: %v", c.name, err)
					}
				}
			}
			// Deliveries may interleave only where the transport does not
			// keep order; match them by body.
			seen := map[string]seenBaggage{}
			for _, d := range in.TakeN(t, 2*len(cases)) {
				seen[d.bodies[0]] = d
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					first, ok1 := seen[c.name+"/0"]
					second, ok2 := seen[c.name+"/1"]
					if !ok1 || !ok2 {
						t.Fatalf("handler did not run for both messages")
					}
					want := p.want(c)
					if want == nil {
						checkHostileSubset(t, first, c.members)
						checkHostileSubset(t, second, c.members)
						return
					}
					first.check(t, want)
					if !maps.Equal(first.all, second.all) {
						t.Errorf("not deterministic: %v then %v", first.all, second.all)
					}
				})
			}
		})
	}
}

// checkHostileSubset checks what is left of over-limit baggage when the
// propagator is not deterministic: a subset of what was sent, within the
// limits, the same in the view and in the OpenTelemetry baggage.
func checkHostileSubset(t *testing.T, d seenBaggage, sent map[string]string) {
	t.Helper()
	if len(d.all) > baggage.MaxMembers {
		t.Errorf("%d members, over %d", len(d.all), baggage.MaxMembers)
	}
	for k, v := range d.all {
		if sent[k] != v {
			t.Errorf("member %s=%q was not sent", k, v)
		}
	}
	if !maps.Equal(d.all, d.otel) {
		t.Errorf("view %v and OTel baggage %v differ", d.all, d.otel)
	}
}
