package baggage

import (
	"context"
	"fmt"
	"slices"

	otelbaggage "go.opentelemetry.io/otel/baggage"
)

// ContextWith returns a copy of ctx that carries the baggage of ctx with
// entries set over it, for code outside handlers that publishes:
//
//	ctx, err := baggage.ContextWith(ctx, map[string]string{"tenant": "acme"})
//	err = b.Publish(ctx, msg) // carries tenant=acme
//
// "The baggage of ctx" is what a publish with ctx would carry: the view's
// current members in a handler, otherwise the OpenTelemetry baggage of ctx.
// Existing keys keep their position and take the new value; new keys are
// added after them in key order.
//
// The returned ctx carries a view of its own, like a handler's:
// FromContext(ctx) returns it, its edits are carried by publishes with ctx,
// and the OpenTelemetry baggage of ctx holds its members. Inside a handler
// the handler's view is left as it is.
//
// It returns ctx unchanged and an error wrapping ErrInvalidKey,
// ErrInvalidValue or ErrLimit when an entry cannot be carried. An empty
// entries still gives ctx a view of its own.
func ContextWith(ctx context.Context, entries map[string]string) (context.Context, error) {
	current := currentEntries(ctx)
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	slices.Sort(keys)

	merged := slices.Clip(current)
	for _, k := range keys {
		m, err := newMember(k, entries[k])
		if err != nil {
			return ctx, err
		}
		e, _ := entryOf(m)
		if i := indexOf(merged, k); i >= 0 {
			if !merged[i].equal(e) {
				merged = slices.Clone(merged)
				merged[i] = e
			}
			continue
		}
		merged = append(merged, e) // clipped: never writes into current
	}
	size := encodedSize(merged)
	if len(merged) > MaxMembers || size > MaxBytes {
		return ctx, fmt.Errorf("baggage: %d members, %d bytes: %w", len(merged), size, ErrLimit)
	}

	v := &Baggage{entries: merged, size: size}
	ob := otelBaggage(merged)
	v.cached, v.cachedOK = ob, true
	v.origin = state{view: v, base: ob, baseEntries: merged}
	ctx = otelbaggage.ContextWithBaggage(ctx, ob)
	return context.WithValue(ctx, ctxKey{}, &v.origin), nil
}

// currentEntries returns the members a publish with ctx would carry, in
// order and within the limits. The slice must not be modified.
func currentEntries(ctx context.Context) []entry {
	if st, ok := ctx.Value(ctxKey{}).(*state); ok {
		entries, _, _ := publishEntries(ctx, st)
		return entries
	}
	entries, _ := fromOTel(otelbaggage.FromContext(ctx), "baggage: read context")
	return entries
}
