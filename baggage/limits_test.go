package baggage

import (
	"strings"
	"testing"
	"unicode/utf8"

	otelbaggage "go.opentelemetry.io/otel/baggage"

	"github.com/tracebus/tracebus/broker"
)

// checkEncoding checks that our size and encoding of a member agree with
// otel-go's Member.String, which the propagators write.
func checkEncoding(t *testing.T, key, value string) {
	t.Helper()
	m, err := otelbaggage.NewMemberRaw(key, value)
	if err != nil {
		return
	}
	e, ok := entryOf(m)
	if !ok {
		return
	}
	want := m.String()
	if got := string(e.appendTo(nil)); got != want {
		t.Errorf("encode(%q) = %q, otel-go writes %q", value, got, want)
	}
	if e.size != len(want) {
		t.Errorf("size(%q) = %d, otel-go writes %d bytes", value, e.size, len(want))
	}
}

func TestEncodingMatchesOTel(t *testing.T) {
	for c := range utf8.RuneSelf {
		checkEncoding(t, "k", "a"+string(rune(c))+"b")
	}
	for _, v := range []string{"", "é", "日本語", "a b,c;d=é%", "%41", "\u2028", "😀"} {
		checkEncoding(t, "k", v)
	}
	// With properties, otel-go encodes.
	p, _ := otelbaggage.NewKeyValueProperty("ttl", "3")
	m, _ := otelbaggage.NewMemberRaw("k", "v w", p)
	e, _ := entryOf(m)
	if got := string(e.appendTo(nil)); got != m.String() || e.size != len(got) {
		t.Errorf("with properties: %q (%d), want %q", got, e.size, m.String())
	}
}

func FuzzEncoding(f *testing.F) {
	for _, v := range []string{"", "a b", "%", "é,;=\"\\"} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) { checkEncoding(t, "k", v) })
}

// FuzzFromHeaders: any header value is read without panic, within the
// limits, the same way twice, and what Inject writes reads back the same.
func FuzzFromHeaders(f *testing.F) {
	for _, v := range []string{"a=1,b=2", "a=%zz", "k v=1", ",,;", "a=1;p=2;q", strings.Repeat("k=v,", 70)} {
		f.Add(v)
	}
	handled(f) // malformed input is reported; keep the log quiet
	f.Fuzz(func(t *testing.T, v string) {
		h := broker.Headers{{Key: "baggage", Value: v}}
		b := FromHeaders(h)
		if b.Len() > MaxMembers || len(b.String()) > MaxBytes {
			t.Fatalf("over the limits: %d members, %d bytes", b.Len(), len(b.String()))
		}
		if again := FromHeaders(h).String(); again != b.String() {
			t.Fatalf("not deterministic: %q then %q", b.String(), again)
		}
		back := FromHeaders(broker.Headers{{Key: "baggage", Value: b.String()}})
		if back.String() != b.String() {
			t.Fatalf("round trip: %q became %q", b.String(), back.String())
		}
	})
}
