package baggage

import (
	"context"
	"net/url"
	"slices"
	"strings"

	otelbaggage "go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"

	"github.com/tracebus/tracebus/broker"
)

// jaegerHeaderPrefix starts the headers of Jaeger's native baggage format:
// one header per member, "uberctx-{key}: {percent-encoded value}".
const jaegerHeaderPrefix = "uberctx-"

// JaegerPropagator carries baggage in Jaeger's native format, for services
// still on Jaeger clients; the contrib Jaeger propagator (OTEL_PROPAGATORS
// "jaeger") carries only the trace context. Combine the two, or select it as
// "jaegerbaggage" in OTEL_PROPAGATORS when exporters.Setup builds the
// propagator:
//
//	OTEL_PROPAGATORS=tracecontext,baggage,jaeger,jaegerbaggage
//
// Values are percent-encoded as Jaeger documents them: Inject escapes every
// byte outside A-Z a-z 0-9 - _ . ~, a space as %20 and a plus as %2B, so
// that both kinds of Jaeger decoder read the value alike: those that
// percent-decode only (Jaeger's JavaScript clients, OpenTelemetry JS) and
// those that also read "+" as a space (jaeger-client-go's query
// unescaping). Extract percent-decodes and keeps a literal "+" as a plus,
// as Jaeger's format and OpenTelemetry JS do; a value that is not valid
// percent-encoding ("100%") is kept as sent.
//
// Extract reads every uberctx- header, case-insensitively, lower-cases the
// key as Jaeger clients do and decodes the value as above. The members join the baggage ctx already has, a
// key present in both taking the uberctx value. Hostile input is bounded
// like W3C baggage: members are taken in key order, at most MaxMembers and
// MaxBytes of them; keys that are not W3C tokens are dropped; both are
// reported through otel.Handle, rate-limited.
//
// Inject writes every member of the baggage a publish carries (the handler's
// view, edits included) as one uberctx- header with a percent-encoded
// value, in key order; on *broker.Headers it first removes the uberctx- headers the
// message already has.
type JaegerPropagator struct{}

var _ propagation.TextMapPropagator = JaegerPropagator{}

// Inject writes the baggage of ctx as uberctx- headers.
func (JaegerPropagator) Inject(ctx context.Context, carrier propagation.TextMapCarrier) {
	if h, ok := carrier.(*broker.Headers); ok {
		for _, k := range jaegerKeys(h.Keys()) {
			h.Del(k)
		}
	}
	entries := slices.Clone(currentEntries(ctx))
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.m.Key(), b.m.Key()) })
	for _, e := range entries {
		carrier.Set(jaegerHeaderPrefix+e.m.Key(), jaegerEscape(e.m.Value()))
	}
}

// Extract returns parent with the uberctx- members of carrier added to its
// baggage, or parent when carrier has none.
func (JaegerPropagator) Extract(parent context.Context, carrier propagation.TextMapCarrier) context.Context {
	keys := jaegerKeys(carrier.Keys())
	if len(keys) == 0 {
		return parent
	}
	slices.Sort(keys)
	members := make([]otelbaggage.Member, 0, min(len(keys), MaxMembers))
	seen := make(map[string]bool, min(len(keys), MaxMembers))
	invalid, dropped := 0, 0
	for _, k := range keys {
		name := strings.ToLower(k[len(jaegerHeaderPrefix):])
		if seen[name] {
			continue // the same key in another case: the first wins
		}
		if len(members) == MaxMembers {
			dropped++
			continue
		}
		value := jaegerUnescape(carrier.Get(k))
		m, err := otelbaggage.NewMemberRaw(name, value)
		if err != nil || !validKey(name) {
			invalid++
			continue
		}
		seen[name] = true
		members = append(members, m)
	}
	entries, _ := fromOTel(otelbaggage.FromContext(parent), "baggage: extract uberctx")
	entries, _ = merge(entries, members) // members are valid: nothing skipped
	entries, _, over := limit(entries)
	report("baggage: extract uberctx", dropped+over, invalid)
	return otelbaggage.ContextWithBaggage(parent, otelBaggage(entries))
}

// Fields returns nil: the header names depend on the baggage.
func (JaegerPropagator) Fields() []string { return nil }

// jaegerEscape percent-encodes a baggage value for an uberctx- header.
// url.QueryEscape escapes every byte but the unreserved ones and writes a
// space as "+", and a "+" in the value as %2B; so each "+" it writes is a
// space, which becomes %20.
func jaegerEscape(v string) string {
	return strings.ReplaceAll(url.QueryEscape(v), "+", "%20")
}

// jaegerUnescape decodes an uberctx- header value: percent escapes are
// decoded and "+" stays a plus (url.PathUnescape); a value that is not
// valid percent-encoding is kept as sent.
func jaegerUnescape(v string) string {
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}

// jaegerKeys returns the keys that start with jaegerHeaderPrefix, in any
// case, and have a name after it.
func jaegerKeys(keys []string) []string {
	var out []string
	for _, k := range keys {
		if len(k) > len(jaegerHeaderPrefix) && strings.EqualFold(k[:len(jaegerHeaderPrefix)], jaegerHeaderPrefix) {
			out = append(out, k)
		}
	}
	return out
}
