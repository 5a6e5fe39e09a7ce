package baggage

import (
	"context"
	"slices"

	"github.com/tracebus/tracebus/internal/baggagehook"
	otelbaggage "go.opentelemetry.io/otel/baggage"
)

type ctxKey struct{}

func init() { baggagehook.ContextWithDelivery = contextWithDelivery }

// state is what a context carries: the view, and the OpenTelemetry baggage
// this package last put into that context together with the members and
// view revision it was built from. Comparing the context's OpenTelemetry
// baggage with base tells edits the user made to it (with
// otelbaggage.ContextWithBaggage) apart from what this package put there.
type state struct {
	view        *Baggage
	base        otelbaggage.Baggage
	baseEntries []entry
	rev         uint64
}

// FromContext returns the baggage view that ctx carries.
//
// In a handler it is the delivery's view: edits through it are seen by every
// goroutine of the handler and carried by every publish made with ctx. The
// same holds for a ctx returned by ContextWith.
//
// Elsewhere it returns a new detached view holding a copy of the
// OpenTelemetry baggage in ctx (empty when there is none). Reading it works
// as in a handler; its edits stay in the copy and are not carried by
// publishes, so code outside handlers puts baggage on ctx with ContextWith.
// FromContext never returns nil.
func FromContext(ctx context.Context) *Baggage {
	if st, ok := ctx.Value(ctxKey{}).(*state); ok {
		return st.view
	}
	entries, _ := fromOTel(otelbaggage.FromContext(ctx), "baggage: read context")
	return &Baggage{entries: entries, size: encodedSize(entries)}
}

// contextWithDelivery returns ctx carrying the baggage of one delivery: a new
// view (FromContext) and, as OpenTelemetry baggage, the merged members, so
// otelbaggage.FromContext and OTel-native libraries see them too.
//
// perMessage holds the OpenTelemetry baggage extracted from each delivered
// message, in delivery order; batch reports a delivery to a batch handler
// (driver.Operation.Batch), which keeps the list for Baggage.Batch. The
// messages' baggage is merged in order, a later message's member replacing
// an earlier one with the same key while keeping its position. Within one
// message, members are taken in key order: otel-go does not keep the order of
// the header, and a fixed order keeps the result deterministic.
//
// Members over the W3C limits (MaxMembers, MaxBytes) are dropped from the
// end, and members with keys that cannot be encoded are dropped; both are
// reported through otel.Handle. The delivery goes on with what is left.
//
// The telemetry middleware calls it, through internal/baggagehook, for
// every consume.
func contextWithDelivery(ctx context.Context, perMessage []otelbaggage.Baggage, batch bool) context.Context {
	v := &Baggage{isBatch: batch}
	if batch {
		v.batch = slices.Clone(perMessage)
	}
	n := 0
	for _, mb := range perMessage {
		n += mb.Len()
	}
	entries := make([]entry, 0, n)
	invalid := 0
	for _, mb := range perMessage {
		if mb.Len() == 0 {
			continue
		}
		var n int
		entries, n = merge(entries, sortedMembers(mb))
		invalid += n
	}
	entries, size, dropped := limit(entries)
	report("baggage: consume", dropped, invalid)
	v.entries, v.size = entries, size

	var ob otelbaggage.Baggage
	switch {
	case len(entries) == 0:
	case len(perMessage) == 1 && dropped == 0 && invalid == 0:
		ob = perMessage[0] // already exactly the members: no rebuild
	default:
		ob = otelBaggage(entries)
	}
	v.cached, v.cachedOK = ob, true
	v.origin = state{view: v, base: ob, baseEntries: entries}
	if ob.Len() > 0 || otelbaggage.FromContext(ctx).Len() > 0 {
		// Without members on either side, the context already reads as
		// the empty baggage: most deliveries save a context value.
		ctx = otelbaggage.ContextWithBaggage(ctx, ob)
	}
	return context.WithValue(ctx, ctxKey{}, &v.origin)
}

// ContextForPublish returns the context a publish made with ctx injects
// baggage from.
//
// When ctx carries a view (in a handler, or from ContextWith), the returned
// context's OpenTelemetry baggage holds the view's current members, edits
// included. OpenTelemetry baggage the user set on ctx after the view was
// attached (with otelbaggage.ContextWithBaggage) takes precedence for the
// keys it touched: a member added or changed there is carried with its value,
// a member deleted there is not carried. Precedence goes to the context
// because it is the narrower scope: the view is shared by the whole handler,
// a context by one call path. The result is limited like contextWithDelivery,
// dropping the user's additions first because they come last.
//
// Without a view, and when the view was not edited, ctx is returned
// unchanged: its OpenTelemetry baggage is carried as it is.
//
// It is called by the telemetry middleware for every publish. Call it
// yourself before handing a handler's ctx to OTel-native code (an
// instrumented HTTP client) if the view was edited and that code should see
// the edits.
func ContextForPublish(ctx context.Context) context.Context {
	st, ok := ctx.Value(ctxKey{}).(*state)
	if !ok || st.view.rev.Load() == st.rev {
		return ctx
	}
	entries, ob, rev := publishEntries(ctx, st)
	ctx = otelbaggage.ContextWithBaggage(ctx, ob)
	return context.WithValue(ctx, ctxKey{}, &state{view: st.view, base: ob, baseEntries: entries, rev: rev})
}

// publishEntries returns the members a publish with ctx carries, given that
// ctx carries st, in order and in OpenTelemetry form, with the view revision
// they reflect.
func publishEntries(ctx context.Context, st *state) ([]entry, otelbaggage.Baggage, uint64) {
	entries, ob, rev := st.view.snapshot()
	user := otelbaggage.FromContext(ctx)
	if sameMembers(user, st.baseEntries) {
		return entries, ob, rev
	}

	// Three-way merge: the view's members, then the user's changes
	// relative to base, in key order.
	entries = slices.Clone(entries)
	for _, e := range st.baseEntries {
		if user.Member(e.m.Key()).Key() == "" { // deleted by the user
			if i := indexOf(entries, e.m.Key()); i >= 0 {
				entries = slices.Delete(entries, i, i+1)
			}
		}
	}
	invalid := 0
	for _, m := range sortedMembers(user) {
		e, ok := entryOf(m)
		if !ok {
			invalid++
			continue
		}
		if i := indexOf(st.baseEntries, m.Key()); i >= 0 && st.baseEntries[i].equal(e) {
			continue // inherited, not changed by the user: the view decides
		}
		if i := indexOf(entries, m.Key()); i >= 0 {
			entries[i] = e
		} else {
			entries = append(entries, e)
		}
	}
	entries, _, dropped := limit(entries)
	report("baggage: publish", dropped, invalid)
	return entries, otelBaggage(entries), rev
}

// sameMembers reports whether b holds exactly the members of entries.
func sameMembers(b otelbaggage.Baggage, entries []entry) bool {
	if b.Len() != len(entries) {
		return false
	}
	for _, e := range entries {
		m := b.Member(e.m.Key())
		if m.Key() == "" || m.Value() != e.m.Value() {
			return false
		}
		if props := len(m.Properties()) > 0; props != e.props || props && m.String() != e.m.String() {
			return false
		}
	}
	return true
}

// fromOTel returns b's members as entries in key order, within the limits;
// drops are reported under what.
func fromOTel(b otelbaggage.Baggage, what string) ([]entry, int) {
	if b.Len() == 0 {
		return nil, 0
	}
	entries, invalid := merge(nil, sortedMembers(b))
	entries, _, dropped := limit(entries)
	report(what, dropped, invalid)
	return entries, dropped + invalid
}
