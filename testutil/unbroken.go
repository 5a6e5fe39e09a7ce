package testutil

import (
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// AssertProcessUnderSend fails t unless every span named process has a span
// named send as its parent, in the same trace, for the same message: key
// returns the same value for both (a message id, a partition and offset).
// It returns how many process spans it checked. Use it where several
// instances of a service consume one stream, to show that each trace is
// unbroken whichever instance handled the message.
func AssertProcessUnderSend(t testing.TB, spans []sdktrace.ReadOnlySpan, send, process string, key func(sdktrace.ReadOnlySpan) string) int {
	t.Helper()
	sends := map[[8]byte]sdktrace.ReadOnlySpan{}
	for _, s := range SpansNamed(spans, send) {
		sends[s.SpanContext().SpanID()] = s
	}
	n := 0
	for _, p := range SpansNamed(spans, process) {
		n++
		parent, ok := sends[p.Parent().SpanID()]
		switch {
		case !ok:
			t.Errorf("process span of %s has parent %s, not a %q span", key(p), p.Parent().SpanID(), send)
		case parent.SpanContext().TraceID() != p.SpanContext().TraceID():
			t.Errorf("process span of %s in trace %s, its send span in %s", key(p), p.SpanContext().TraceID(), parent.SpanContext().TraceID())
		case key(parent) != key(p):
			t.Errorf("process span of %s has the send span of %s as parent", key(p), key(parent))
		}
	}
	return n
}
