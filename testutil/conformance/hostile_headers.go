package conformance

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/baggage"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
)

// hostileHeader is a set of headers from the network and the trace a
// handler behind the Telemetry middleware must be processed in: the trace
// of parent, or a new one when parent is 0.
type hostileHeader struct {
	name    string
	headers broker.Headers
	parent  byte // trace id byte of the expected parent; 0: a new trace
}

// tp is a valid sampled traceparent whose trace id is b repeated.
func tp(b byte) string {
	return fmt.Sprintf("00-%s-%s-01", strings.Repeat(fmt.Sprintf("%02x", b), 16), strings.Repeat("ab", 8))
}

func hostileHeaderCases() []hostileHeader {
	return []hostileHeader{
		{name: "MalformedTraceparent", headers: broker.Headers{{Key: "traceparent", Value: "00-zz-garbage-01"}}},
		{name: "AllZeroTraceID", headers: broker.Headers{{Key: "traceparent", Value: "00-" + strings.Repeat("0", 32) + "-" + strings.Repeat("ab", 8) + "-01"}}},
		{name: "InvalidUTF8Traceparent", headers: broker.Headers{{Key: "traceparent", Value: "00-\xff\xfe-\x80-01"}}},
		{name: "HugeTraceparent", headers: broker.Headers{{Key: "traceparent", Value: strings.Repeat("0", 16<<10)}}}, // JetStream caps headers at 64 KB
		{name: "CaseVariantGarbageFirst", parent: 0x11,
			headers: broker.Headers{{Key: "TRACEPARENT", Value: "garbage"}, {Key: "traceparent", Value: tp(0x11)}}},
		{name: "CaseVariantGarbageAfter", parent: 0x12,
			headers: broker.Headers{{Key: "traceparent", Value: tp(0x12)}, {Key: "Traceparent", Value: "garbage"}}},
		{name: "TwoDifferentTraceparents",
			headers: broker.Headers{{Key: "traceparent", Value: tp(0x13)}, {Key: "traceparent", Value: tp(0x14)}}},
		{name: "ValidWithHostileBaggage", parent: 0x15,
			headers: broker.Headers{{Key: "traceparent", Value: tp(0x15)}, {Key: "baggage", Value: "k=%zz,\xff=1," + strings.Repeat("x", 10<<10)}}},
	}
}

// TestHostileHeaders sends messages with hostile trace headers (malformed,
// oversized, invalid UTF-8, in two cases, duplicated) through a broker
// without middleware, so that they arrive as written, to a handler behind
// the Telemetry middleware. Every message is handled exactly once, nothing
// panics, and each is processed in the trace the rules of the middleware
// and broker.Headers say, the same for both copies sent.
func TestHostileHeaders(t *testing.T, s Suite) {
	dest := s.Destination(t)
	rec := testutil.NewRecorder(t)
	b := s.Broker(t, broker.WithMiddleware(middleware.NewTelemetry(
		middleware.WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, baggage.Propagator{})),
		middleware.WithTracerProvider(rec.TracerProvider),
		middleware.WithMeterProvider(rec.MeterProvider),
	)))
	type seen struct {
		body string
		span trace.SpanContext
	}
	in := testkit.NewInbox[seen](s.Wait())
	if err := b.Subscribe(dest, func(ctx context.Context, m *broker.Message) error {
		in.Put(seen{string(m.Body), trace.SpanContextFromContext(ctx)})
		return nil
	}, s.Options()...); err != nil {
		t.Fatal(err)
	}
	s.Start(t, b)
	raw := s.Broker(t)
	cases := hostileHeaderCases()
	for _, c := range cases {
		for i := range 2 {
			m := &broker.Message{Destination: dest, Body: fmt.Appendf(nil, "%s/%d", c.name, i), Headers: c.headers.Clone()}
			if err := raw.Publish(context.Background(), m); err != nil {
				t.Fatalf("%s: publish: %v", c.name, err)
			}
		}
	}
	got := map[string]trace.SpanContext{}
	for _, d := range in.TakeN(t, 2*len(cases)) {
		if _, dup := got[d.body]; dup {
			t.Errorf("%s handled twice", d.body)
		}
		got[d.body] = d.span
	}
	if extra := in.Len(); extra > 0 {
		t.Errorf("%d deliveries more than messages sent", extra)
	}
	// The process span ends just after the handler returns: wait for it.
	parentOf := func(t *testing.T, sc trace.SpanContext) trace.SpanContext {
		var parent trace.SpanContext
		testutil.Eventually(t, s.Wait(), func() bool {
			for _, sp := range rec.Spans() {
				if sp.SpanContext().SpanID() == sc.SpanID() {
					parent = sp.Parent()
					return true
				}
			}
			return false
		}, "process span recorded")
		return parent
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for i := range 2 {
				sc, ok := got[fmt.Sprintf("%s/%d", c.name, i)]
				if !ok {
					t.Fatalf("copy %d not handled", i)
				}
				parent := parentOf(t, sc)
				if c.parent == 0 {
					if parent.IsValid() {
						t.Errorf("copy %d processed under parent %s, want a new trace", i, parent.TraceID())
					}
					continue
				}
				var want trace.TraceID
				for j := range want {
					want[j] = c.parent
				}
				if parent.TraceID() != want {
					t.Errorf("copy %d processed under trace %s, want %s", i, parent.TraceID(), want)
				}
			}
		})
	}
}
