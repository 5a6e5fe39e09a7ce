package baggage

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	otelbaggage "go.opentelemetry.io/otel/baggage"
)

// Baggage is a mutable view of the W3C baggage that travels with messages.
//
// In a handler, FromContext returns the delivery's view: the baggage of the
// message (or the merge of a batch's messages), shared by everything that
// runs with the handler's ctx. Edits made with Set, Remove and Clear are
// carried by every later publish made with that ctx. Outside a handler,
// FromContext returns a detached copy whose edits stay in the copy; see
// FromContext and ContextWith.
//
// Keys are W3C baggage keys (RFC 7230 tokens such as "tenant" or
// "user-id"); values are any UTF-8 strings and are percent-encoded on the
// wire. The view keeps its members in first-seen order, which is the order
// they are written to headers and the order in which members are dropped
// from the end when limits are exceeded.
//
// A Baggage is safe for concurrent use by the goroutines of a handler. The
// methods of a nil *Baggage behave as an empty view that cannot be edited.
type Baggage struct {
	mu sync.RWMutex
	// entries is copy-on-write: an edit installs a new slice, so a slice
	// taken under the lock stays valid as a snapshot.
	entries []entry
	size    int // encoded size of entries, commas included
	// rev counts edits. It is written under mu and read without it by
	// ContextForPublish's fast path.
	rev atomic.Uint64
	// cached is entries in OpenTelemetry form as of cachedRev.
	cached    otelbaggage.Baggage
	cachedRev uint64
	cachedOK  bool

	// batch holds each message's baggage for batch deliveries, in delivery
	// order; nil otherwise. It is never modified.
	batch   []otelbaggage.Baggage
	isBatch bool
	// origin is the state the context this view was attached to carries;
	// it lives here to save an allocation per delivery.
	origin state
}

// Get returns the value of key, or "" when the baggage has no such member.
func (b *Baggage) Get(key string) string {
	v, _ := b.Lookup(key)
	return v
}

// Lookup returns the value of key and whether the baggage has such a member.
func (b *Baggage) Lookup(key string) (string, bool) {
	if b == nil {
		return "", false
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if i := indexOf(b.entries, key); i >= 0 {
		return b.entries[i].m.Value(), true
	}
	return "", false
}

// All returns a copy of the members as a map from key to value. It is never
// nil; changing it does not change the baggage.
func (b *Baggage) All() map[string]string {
	if b == nil {
		return map[string]string{}
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	all := make(map[string]string, len(b.entries))
	for _, e := range b.entries {
		all[e.m.Key()] = e.m.Value()
	}
	return all
}

// Keys returns the keys in first-seen order.
func (b *Baggage) Keys() []string {
	if b == nil {
		return nil
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	keys := make([]string, len(b.entries))
	for i, e := range b.entries {
		keys[i] = e.m.Key()
	}
	return keys
}

// Len returns the number of members.
func (b *Baggage) Len() int {
	if b == nil {
		return 0
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.entries)
}

// Batch returns the baggage of each message of a batch delivery, in delivery
// order, as copies. It returns nil for a single-message delivery and outside
// handlers. A batch delivery of one message (a batch subscription that got
// only one message) returns a list of one: unlike FastStream, the length of
// the list is always the length of the batch the handler received.
//
// The list is the baggage as it arrived; edits made through the view change
// the merged members, not the list.
func (b *Baggage) Batch() []map[string]string {
	if b == nil || !b.isBatch {
		return nil
	}
	list := make([]map[string]string, len(b.batch))
	for i, mb := range b.batch {
		m := make(map[string]string, mb.Len())
		for _, member := range mb.Members() {
			m[member.Key()] = member.Value()
		}
		list[i] = m
	}
	return list
}

// Set sets key to value. A member with the same key is replaced in place
// (keeping its position and dropping its W3C properties); a new key goes
// last.
//
// It returns an error wrapping ErrInvalidKey or ErrInvalidValue for a key or
// value W3C baggage cannot carry, and ErrLimit when the new member would make
// the baggage exceed MaxMembers members or MaxBytes bytes. The baggage is
// unchanged after an error.
func (b *Baggage) Set(key, value string) error {
	m, err := newMember(key, value)
	if err != nil {
		return err
	}
	if b == nil {
		return fmt.Errorf("baggage: set %q: %w", key, ErrNilBaggage)
	}
	e, _ := entryOf(m) // newMember checked the key

	b.mu.Lock()
	defer b.mu.Unlock()
	i := indexOf(b.entries, key)
	size := b.size
	switch {
	case i >= 0 && b.entries[i].equal(e):
		return nil // unchanged: keep the cached OpenTelemetry form
	case i >= 0:
		size += e.size - b.entries[i].size
	case len(b.entries) == 0:
		size = e.size
	default:
		size += 1 + e.size
	}
	if i < 0 && len(b.entries) >= MaxMembers {
		return fmt.Errorf("baggage: set %q: %d members already: %w", key, len(b.entries), ErrLimit)
	}
	if size > MaxBytes {
		return fmt.Errorf("baggage: set %q: %d bytes: %w", key, size, ErrLimit)
	}
	var entries []entry
	if i >= 0 {
		entries = slices.Clone(b.entries)
		entries[i] = e
	} else {
		entries = make([]entry, len(b.entries), len(b.entries)+1)
		copy(entries, b.entries)
		entries = append(entries, e)
	}
	b.install(entries, size)
	return nil
}

// Remove removes key. Removing a key that is not there does nothing.
func (b *Baggage) Remove(key string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	i := indexOf(b.entries, key)
	if i < 0 {
		return
	}
	entries := slices.Delete(slices.Clone(b.entries), i, i+1)
	b.install(entries, encodedSize(entries))
}

// Clear removes every member. Publishes made afterwards with the handler's
// ctx carry no baggage, unless OpenTelemetry baggage was added to their ctx.
func (b *Baggage) Clear() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.entries) == 0 {
		return
	}
	b.install(nil, 0)
}

// String returns the members as a W3C baggage-string, in first-seen order,
// as they would be written to a message's "baggage" header.
func (b *Baggage) String() string {
	if b == nil {
		return ""
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	return encode(b.entries)
}

// install replaces the entries; the caller holds b.mu.
func (b *Baggage) install(entries []entry, size int) {
	b.entries = entries
	b.size = size
	b.rev.Add(1)
}

// snapshot returns the entries, their OpenTelemetry form and the revision
// they belong to, consistently.
func (b *Baggage) snapshot() (entries []entry, ob otelbaggage.Baggage, rev uint64) {
	b.mu.RLock()
	entries, rev = b.entries, b.rev.Load()
	if b.cachedOK && b.cachedRev == rev {
		ob = b.cached
		b.mu.RUnlock()
		return entries, ob, rev
	}
	b.mu.RUnlock()

	b.mu.Lock()
	defer b.mu.Unlock()
	entries, rev = b.entries, b.rev.Load()
	if !b.cachedOK || b.cachedRev != rev {
		b.cached, b.cachedRev, b.cachedOK = otelBaggage(entries), rev, true
	}
	return entries, b.cached, rev
}

// newMember validates key and value and returns them as a member without
// properties.
func newMember(key, value string) (otelbaggage.Member, error) {
	if !validKey(key) {
		return otelbaggage.Member{}, fmt.Errorf("%w: %q is not an RFC 7230 token", ErrInvalidKey, key)
	}
	if !utf8.ValidString(value) {
		return otelbaggage.Member{}, fmt.Errorf("%w: value of %q is not valid UTF-8", ErrInvalidValue, key)
	}
	m, err := otelbaggage.NewMemberRaw(key, value)
	if err != nil {
		return otelbaggage.Member{}, fmt.Errorf("%w: %w", ErrInvalidValue, err)
	}
	return m, nil
}

// encode joins the entries' encoded forms into a baggage-string.
func encode(entries []entry) string {
	if len(entries) == 0 {
		return ""
	}
	buf := make([]byte, 0, encodedSize(entries))
	for i, e := range entries {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = e.appendTo(buf)
	}
	return string(buf)
}
