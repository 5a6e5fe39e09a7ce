package baggage

import (
	"context"
	"strings"

	otelbaggage "go.opentelemetry.io/otel/baggage"

	"github.com/tracebus/tracebus/broker"
)

// headerName is the W3C baggage header. Reads ignore case, as for every
// broker.Headers lookup.
const headerName = "baggage"

// Inject writes the baggage a publish with ctx would carry into h as one W3C
// baggage header, replacing any baggage header h already has; with no
// baggage, it removes it. Members are written in the view's order (key order
// for OpenTelemetry baggage outside a view), within the W3C limits.
//
// The telemetry middleware does this for every publish with its propagator;
// Inject is for code that builds headers without it, such as a message
// handed to another system.
func Inject(ctx context.Context, h *broker.Headers) {
	entries := currentEntries(ctx)
	h.Del(headerName)
	if len(entries) > 0 {
		h.Set(headerName, encode(entries))
	}
}

// FromHeaders returns a detached view of the baggage in h: the members of
// every baggage header, in header order, a later duplicate key replacing an
// earlier value in place. It reads what the plain W3C propagator
// (propagation.Baggage) writes, exactly.
//
// Hostile input is handled deterministically: malformed members (no "=",
// a key that is not a token, a value with characters outside the W3C set,
// invalid percent-encoding) are skipped; members beyond MaxMembers or
// MaxBytes are dropped from the end. Unlike otel-go, which drops a whole
// header of more than MaxBytes bytes, the leading members that fit are kept.
// Drops are reported through otel.Handle.
func FromHeaders(h broker.Headers) *Baggage {
	entries := parseValues(h.Values(headerName), "baggage: read headers")
	return &Baggage{entries: entries, size: encodedSize(entries)}
}

// parseValues parses the values of baggage headers into entries, in header
// order, within the limits; drops are reported under what.
func parseValues(values []string, what string) []entry {
	var entries []entry
	invalid, dropped := 0, 0
	for _, value := range values {
		for raw := range strings.SplitSeq(value, ",") {
			if strings.TrimSpace(raw) == "" {
				continue // empty list-members are allowed and ignored
			}
			if len(raw) > MaxBytes {
				dropped++
				continue
			}
			// Parse of a single list-member gives that member, or an
			// error for a malformed one.
			b, err := otelbaggage.Parse(raw)
			if err != nil || b.Len() != 1 {
				invalid++
				continue
			}
			var n int
			entries, n = merge(entries, b.Members())
			invalid += n
		}
	}
	entries, _, over := limit(entries)
	report(what, dropped+over, 0)
	if invalid > 0 {
		reportMalformed(what, invalid)
	}
	return entries
}
