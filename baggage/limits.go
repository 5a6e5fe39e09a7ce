package baggage

import (
	"cmp"
	"fmt"
	"slices"

	"go.opentelemetry.io/otel"
	otelbaggage "go.opentelemetry.io/otel/baggage"
)

// The W3C Baggage limits this package enforces: a baggage-string carries at
// most MaxMembers list-members and at most MaxBytes bytes, commas included.
const (
	MaxMembers = 64
	MaxBytes   = 8192
)

// entry is one member of a view with the length of its encoded form
// ("key=percent-encoded-value;properties"), so limits are checked without
// encoding. Members rarely have W3C properties; only those are encoded by
// otel-go to learn their size.
type entry struct {
	m     otelbaggage.Member
	size  int
	props bool
}

// entryOf returns m as an entry. A member whose key is not a W3C key cannot
// be encoded (otel-go writes nothing for it), so ok is false.
func entryOf(m otelbaggage.Member) (e entry, ok bool) {
	if !validKey(m.Key()) {
		return entry{}, false
	}
	if len(m.Properties()) > 0 {
		return entry{m: m, size: len(m.String()), props: true}, true
	}
	return entry{m: m, size: len(m.Key()) + 1 + escapedLen(m.Value())}, true
}

// equal reports whether e and o encode to the same list-member.
func (e entry) equal(o entry) bool {
	if e.m.Key() != o.m.Key() || e.m.Value() != o.m.Value() || e.props != o.props {
		return false
	}
	return !e.props || e.m.String() == o.m.String()
}

// appendTo appends the encoded member to buf.
func (e entry) appendTo(buf []byte) []byte {
	if e.props {
		return append(buf, e.m.String()...)
	}
	buf = append(buf, e.m.Key()...)
	buf = append(buf, '=')
	return appendEscaped(buf, e.m.Value())
}

// sortedMembers returns b's members ordered by key. otel-go keeps baggage in
// a map, so the order a sender wrote is lost by the time we see it; sorting
// is what makes merging and dropping deterministic.
func sortedMembers(b otelbaggage.Baggage) []otelbaggage.Member {
	ms := b.Members()
	slices.SortFunc(ms, func(a, b otelbaggage.Member) int { return cmp.Compare(a.Key(), b.Key()) })
	return ms
}

// merge appends ms to entries in order: a key already present keeps its
// position and takes the new member (later wins); a new key is appended.
// Members with keys that cannot be encoded are skipped and counted.
func merge(entries []entry, ms []otelbaggage.Member) ([]entry, int) {
	if entries == nil {
		entries = make([]entry, 0, len(ms))
	}
	invalid := 0
	for _, m := range ms {
		e, ok := entryOf(m)
		if !ok {
			invalid++
			continue
		}
		if i := indexOf(entries, m.Key()); i >= 0 {
			entries[i] = e
			continue
		}
		entries = append(entries, e)
	}
	return entries, invalid
}

func indexOf(entries []entry, key string) int {
	for i := range entries {
		if entries[i].m.Key() == key {
			return i
		}
	}
	return -1
}

// encodedSize is the length of the baggage-string that entries encode to:
// members joined by commas.
func encodedSize(entries []entry) int {
	if len(entries) == 0 {
		return 0
	}
	n := len(entries) - 1
	for _, e := range entries {
		n += e.size
	}
	return n
}

// limit keeps entries in order while they fit the W3C limits: an entry that
// would make the baggage exceed MaxMembers members or MaxBytes bytes is
// dropped, and later, smaller entries may still fit. It filters in place and
// returns the kept entries, their encoded size and how many were dropped.
func limit(entries []entry) (kept []entry, size, dropped int) {
	size = encodedSize(entries)
	if len(entries) <= MaxMembers && size <= MaxBytes {
		return entries, size, 0
	}
	kept = entries[:0]
	size = 0
	for _, e := range entries {
		add := e.size
		if len(kept) > 0 {
			add++ // comma
		}
		if len(kept) == MaxMembers || size+add > MaxBytes {
			dropped++
			continue
		}
		kept = append(kept, e)
		size += add
	}
	clear(entries[len(kept):])
	return kept, size, dropped
}

// report hands a dropped-members error to the OpenTelemetry error handler,
// rate-limited (see reporter).
func report(what string, dropped, invalid int) {
	if dropped > 0 {
		limitReports.report(func() error {
			return fmt.Errorf("%s: dropped %d member(s) over %d members or %d bytes: %w",
				what, dropped, MaxMembers, MaxBytes, ErrLimit)
		})
	}
	if invalid > 0 {
		invalidReports.report(func() error {
			return fmt.Errorf("%s: dropped %d member(s) that cannot be encoded: %w",
				what, invalid, ErrInvalidKey)
		})
	}
}

// otelBaggage builds the OpenTelemetry form of entries, which are within the
// limits, so otel-go drops nothing.
func otelBaggage(entries []entry) otelbaggage.Baggage {
	if len(entries) == 0 {
		return otelbaggage.Baggage{}
	}
	ms := make([]otelbaggage.Member, len(entries))
	for i, e := range entries {
		ms[i] = e.m
	}
	b, err := otelbaggage.New(ms...)
	if err != nil {
		// Unreachable: members are valid and within the limits. Keep what
		// otel-go built and say so rather than lose the message.
		otel.Handle(fmt.Errorf("baggage: build OpenTelemetry baggage: %w", err))
	}
	return b
}

// validKey reports whether s is a W3C baggage key: an RFC 7230 token.
func validKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChar[s[i]] {
			return false
		}
	}
	return true
}

var tokenChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// reportMalformed hands a malformed-members error to the OpenTelemetry error
// handler, rate-limited (see reporter).
func reportMalformed(what string, n int) {
	malformedReports.report(func() error {
		return fmt.Errorf("%s: skipped %d malformed member(s): %w", what, n, ErrMalformed)
	})
}

// escapedLen is the length of v percent-encoded as otel-go encodes baggage
// values: '%' and every byte outside the W3C baggage-octet set become %XX.
func escapedLen(v string) int {
	n := len(v)
	for i := 0; i < len(v); i++ {
		if !valueChar[v[i]] {
			n += 2
		}
	}
	return n
}

// appendEscaped appends v percent-encoded like escapedLen counts.
func appendEscaped(buf []byte, v string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(v); i++ {
		c := v[i]
		if valueChar[c] {
			buf = append(buf, c)
			continue
		}
		buf = append(buf, '%', hex[c>>4], hex[c&15])
	}
	return buf
}

// valueChar holds the W3C baggage-octets that are written unescaped:
// %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E, except '%' itself.
var valueChar = func() (t [256]bool) {
	for c := 0x21; c <= 0x7e; c++ {
		t[c] = c != '"' && c != ',' && c != ';' && c != '\\' && c != '%'
	}
	return t
}()
