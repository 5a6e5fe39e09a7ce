package baggage

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	otelbaggage "go.opentelemetry.io/otel/baggage"
)

// bag builds OpenTelemetry baggage from key/value pairs.
func bag(t testing.TB, kv ...string) otelbaggage.Baggage {
	t.Helper()
	var ms []otelbaggage.Member
	for i := 0; i < len(kv); i += 2 {
		m, err := otelbaggage.NewMemberRaw(kv[i], kv[i+1])
		if err != nil {
			t.Fatalf("member %q: %v", kv[i], err)
		}
		ms = append(ms, m)
	}
	b, err := otelbaggage.New(ms...)
	if err != nil {
		t.Fatalf("baggage: %v", err)
	}
	return b
}

// otelMap returns the OpenTelemetry baggage of ctx as a map.
func otelMap(ctx context.Context) map[string]string {
	m := map[string]string{}
	for _, mem := range otelbaggage.FromContext(ctx).Members() {
		m[mem.Key()] = mem.Value()
	}
	return m
}

// handled captures what otel.Handle receives during a test.
func handled(t testing.TB) func() []error {
	t.Helper()
	var mu sync.Mutex
	var errs []error
	resetReports()
	t.Cleanup(resetReports)
	prev := otel.GetErrorHandler()
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, err)
	}))
	t.Cleanup(func() { otel.SetErrorHandler(prev) })
	return func() []error {
		mu.Lock()
		defer mu.Unlock()
		return append([]error(nil), errs...)
	}
}

func wantMap(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestContextWithDeliverySingle(t *testing.T) {
	ctx := contextWithDelivery(context.Background(), []otelbaggage.Baggage{bag(t, "foo", "bar", "n", "1")}, false)
	b := FromContext(ctx)
	if got := b.Get("foo"); got != "bar" {
		t.Errorf(`Get("foo") = %q, want "bar"`, got)
	}
	if got := b.Get("missing"); got != "" {
		t.Errorf(`Get("missing") = %q, want ""`, got)
	}
	wantMap(t, "All", b.All(), map[string]string{"foo": "bar", "n": "1"})
	if got := b.Batch(); got != nil {
		t.Errorf("Batch = %v, want nil for a single delivery", got)
	}
	wantMap(t, "OTel baggage", otelMap(ctx), map[string]string{"foo": "bar", "n": "1"})
	if FromContext(ctx) != b {
		t.Error("FromContext returned a different view for the same ctx")
	}
}

func TestContextWithDeliveryReplacesAmbientOTelBaggage(t *testing.T) {
	ctx := otelbaggage.ContextWithBaggage(context.Background(), bag(t, "ambient", "x"))
	ctx = contextWithDelivery(ctx, []otelbaggage.Baggage{{}}, false)
	wantMap(t, "All", FromContext(ctx).All(), map[string]string{})
	wantMap(t, "OTel baggage", otelMap(ctx), map[string]string{})
}

func TestContextWithDeliveryBatchMergesInOrder(t *testing.T) {
	per := []otelbaggage.Baggage{
		bag(t, "foo", "1", "a", "x"),
		bag(t, "bar", "baz"),
		bag(t, "foo", "3"),
	}
	ctx := contextWithDelivery(context.Background(), per, true)
	b := FromContext(ctx)
	wantMap(t, "All", b.All(), map[string]string{"foo": "3", "a": "x", "bar": "baz"})
	// First-seen order: message 1 in key order, then message 2's new key.
	if got, want := strings.Join(b.Keys(), ","), "a,foo,bar"; got != want {
		t.Errorf("Keys = %s, want %s", got, want)
	}
	if got, want := b.String(), "a=x,foo=3,bar=baz"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	list := b.Batch()
	if len(list) != 3 {
		t.Fatalf("Batch has %d entries, want 3", len(list))
	}
	wantMap(t, "Batch[0]", list[0], map[string]string{"foo": "1", "a": "x"})
	wantMap(t, "Batch[1]", list[1], map[string]string{"bar": "baz"})
	wantMap(t, "Batch[2]", list[2], map[string]string{"foo": "3"})
	wantMap(t, "OTel baggage", otelMap(ctx), map[string]string{"foo": "3", "a": "x", "bar": "baz"})

	// The list is a copy.
	list[0]["foo"] = "changed"
	if got := b.Batch()[0]["foo"]; got != "1" {
		t.Errorf("Batch()[0][foo] = %q after changing a copy, want 1", got)
	}
}

func TestContextWithDeliveryBatchOfOne(t *testing.T) {
	b := FromContext(contextWithDelivery(context.Background(), []otelbaggage.Baggage{bag(t, "k", "v")}, true))
	list := b.Batch()
	if len(list) != 1 {
		t.Fatalf("Batch has %d entries, want 1 for a batch delivery of one message", len(list))
	}
	wantMap(t, "Batch[0]", list[0], map[string]string{"k": "v"})
}

func TestContextForPublishUnchanged(t *testing.T) {
	plain := otelbaggage.ContextWithBaggage(context.Background(), bag(t, "a", "1"))
	if got := ContextForPublish(plain); got != plain {
		t.Error("ContextForPublish changed a ctx without a view")
	}
	ctx := contextWithDelivery(context.Background(), []otelbaggage.Baggage{bag(t, "a", "1")}, false)
	if got := ContextForPublish(ctx); got != ctx {
		t.Error("ContextForPublish changed a ctx whose view was not edited")
	}
	// Setting a member to the value it has is not an edit.
	if err := FromContext(ctx).Set("a", "1"); err != nil {
		t.Fatal(err)
	}
	if got := ContextForPublish(ctx); got != ctx {
		t.Error("ContextForPublish changed a ctx after a no-op Set")
	}
}

func TestContextForPublishCarriesEdits(t *testing.T) {
	ctx := contextWithDelivery(context.Background(), []otelbaggage.Baggage{bag(t, "foo", "bar")}, false)
	b := FromContext(ctx)
	if err := b.Set("bar", "baz"); err != nil {
		t.Fatal(err)
	}
	if err := b.Set("baz", "bar"); err != nil {
		t.Fatal(err)
	}
	b.Remove("foo")
	b.Remove("never-there")
	pub := ContextForPublish(ctx)
	wantMap(t, "published", otelMap(pub), map[string]string{"bar": "baz", "baz": "bar"})
	if FromContext(pub) != b {
		t.Error("the publish ctx carries a different view")
	}
	// The handler's own ctx still holds the delivered OTel baggage.
	wantMap(t, "handler OTel baggage", otelMap(ctx), map[string]string{"foo": "bar"})

	// A ctx returned by ContextForPublish follows later edits too.
	b.Clear()
	wantMap(t, "after Clear", otelMap(ContextForPublish(pub)), map[string]string{})
	wantMap(t, "after Clear, handler ctx", otelMap(ContextForPublish(ctx)), map[string]string{})
	if err := b.Set("again", "1"); err != nil {
		t.Fatal(err)
	}
	wantMap(t, "after Set", otelMap(ContextForPublish(pub)), map[string]string{"again": "1"})
}

func TestContextForPublishUserOTelBaggageTakesPrecedence(t *testing.T) {
	ctx := contextWithDelivery(context.Background(),
		[]otelbaggage.Baggage{bag(t, "keep", "1", "gone", "2", "shared", "3")}, false)
	b := FromContext(ctx)

	// Without view edits the user's OTel baggage is carried as it is.
	user := otelbaggage.FromContext(ctx)
	m, _ := otelbaggage.NewMemberRaw("added", "u")
	user, _ = user.SetMember(m)
	user = user.DeleteMember("gone")
	uctx := otelbaggage.ContextWithBaggage(ctx, user)
	if got := ContextForPublish(uctx); got != uctx {
		t.Error("ContextForPublish changed a ctx whose view was not edited")
	}

	// With view edits: the view's members, then the user's changes win.
	if err := b.Set("shared", "view"); err != nil {
		t.Fatal(err)
	}
	if err := b.Set("added", "view"); err != nil {
		t.Fatal(err)
	}
	if err := b.Set("viewonly", "v"); err != nil {
		t.Fatal(err)
	}
	wantMap(t, "published", otelMap(ContextForPublish(uctx)), map[string]string{
		"keep":     "1",    // inherited, untouched
		"shared":   "view", // edited in the view only
		"added":    "u",    // added in ctx: ctx wins
		"viewonly": "v",
		// "gone" deleted in ctx
	})
}

func TestFromContextOutsideHandler(t *testing.T) {
	b := FromContext(context.Background())
	if b == nil {
		t.Fatal("FromContext returned nil")
	}
	if b.Len() != 0 || b.Batch() != nil {
		t.Errorf("empty ctx: All = %v, Batch = %v", b.All(), b.Batch())
	}
	ctx := otelbaggage.ContextWithBaggage(context.Background(), bag(t, "tenant", "acme"))
	d := FromContext(ctx)
	if got := d.Get("tenant"); got != "acme" {
		t.Errorf(`Get("tenant") = %q, want "acme"`, got)
	}
	if err := d.Set("tenant", "other"); err != nil {
		t.Fatal(err)
	}
	wantMap(t, "ctx after editing a detached view", otelMap(ContextForPublish(ctx)), map[string]string{"tenant": "acme"})
	if FromContext(ctx).Get("tenant") != "acme" {
		t.Error("a detached view's edit leaked into the next FromContext")
	}
}

func TestNilBaggage(t *testing.T) {
	var b *Baggage
	if b.Get("x") != "" || b.Len() != 0 || len(b.All()) != 0 || b.Batch() != nil || b.Keys() != nil || b.String() != "" {
		t.Error("nil *Baggage is not empty")
	}
	if err := b.Set("x", "1"); !errors.Is(err, ErrNilBaggage) {
		t.Errorf("Set on nil = %v, want ErrNilBaggage", err)
	}
	b.Remove("x")
	b.Clear()
}

func TestSetErrors(t *testing.T) {
	b := FromContext(contextWithDelivery(context.Background(), nil, false))
	for _, tc := range []struct {
		key, value string
		want       error
	}{
		{"", "v", ErrInvalidKey},
		{"has space", "v", ErrInvalidKey},
		{"ключ", "v", ErrInvalidKey},
		{"k=v", "v", ErrInvalidKey},
		{"k", "\xff\xfe", ErrInvalidValue},
		{"k", strings.Repeat("x", MaxBytes), ErrLimit},
	} {
		if err := b.Set(tc.key, tc.value); !errors.Is(err, tc.want) {
			t.Errorf("Set(%q, %.10q) = %v, want %v", tc.key, tc.value, err, tc.want)
		}
	}
	if b.Len() != 0 {
		t.Errorf("failed Sets changed the view: %v", b.All())
	}
	// Values that need percent-encoding are fine.
	if err := b.Set("k", "a b,c;d=é%"); err != nil {
		t.Fatal(err)
	}
	if got := b.Get("k"); got != "a b,c;d=é%" {
		t.Errorf("Get = %q", got)
	}
	for i := 1; i < MaxMembers; i++ {
		if err := b.Set(fmt.Sprintf("k%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Set("one-more", "v"); !errors.Is(err, ErrLimit) {
		t.Errorf("member %d: Set = %v, want ErrLimit", MaxMembers+1, err)
	}
	if err := b.Set("k1", "replaced"); err != nil {
		t.Errorf("replacing a member at the member limit: %v", err)
	}
}

func TestContextWithDeliveryLimits(t *testing.T) {
	errs := handled(t)
	// Two messages of 40 members each: the merge has 80 distinct keys.
	var first, second []string
	for i := range 40 {
		first = append(first, fmt.Sprintf("a%02d", i), "1")
		second = append(second, fmt.Sprintf("b%02d", i), "2")
	}
	ctx := contextWithDelivery(context.Background(), []otelbaggage.Baggage{bag(t, first...), bag(t, second...)}, true)
	b := FromContext(ctx)
	keys := b.Keys()
	if len(keys) != MaxMembers {
		t.Fatalf("%d members kept, want %d", len(keys), MaxMembers)
	}
	if keys[0] != "a00" || keys[39] != "a39" || keys[40] != "b00" || keys[63] != "b23" {
		t.Errorf("kept %v, want a00..a39 then b00..b23", keys)
	}
	if n := otelbaggage.FromContext(ctx).Len(); n != MaxMembers {
		t.Errorf("OTel baggage has %d members, want %d", n, MaxMembers)
	}
	if len(b.Batch()) != 2 || len(b.Batch()[1]) != 40 {
		t.Errorf("Batch lost members: %d lists", len(b.Batch()))
	}
	if got := errs(); len(got) != 1 || !errors.Is(got[0], ErrLimit) {
		t.Errorf("otel.Handle got %v, want one ErrLimit", got)
	}

	// Bytes: three members of 3000 bytes; the third does not fit, a small
	// fourth still does.
	errs = handled(t)
	big := strings.Repeat("x", 3000)
	ctx = contextWithDelivery(context.Background(), []otelbaggage.Baggage{
		bag(t, "m1", big), bag(t, "m2", big), bag(t, "m3", big), bag(t, "m4", "small"),
	}, true)
	if got, want := strings.Join(FromContext(ctx).Keys(), ","), "m1,m2,m4"; got != want {
		t.Errorf("kept %s, want %s", got, want)
	}
	if n := len(otelbaggage.FromContext(ctx).String()); n > MaxBytes {
		t.Errorf("OTel baggage encodes to %d bytes", n)
	}
	if got := errs(); len(got) != 1 || !errors.Is(got[0], ErrLimit) {
		t.Errorf("otel.Handle got %v, want one ErrLimit", got)
	}
}

func TestConcurrentUse(t *testing.T) {
	ctx := contextWithDelivery(context.Background(), []otelbaggage.Baggage{bag(t, "a", "1")}, false)
	b := FromContext(ctx)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				key := fmt.Sprintf("g%d", g)
				if err := b.Set(key, fmt.Sprint(i)); err != nil {
					t.Error(err)
					return
				}
				_ = b.Get("a")
				_ = b.All()
				pub := ContextForPublish(ctx)
				if got := otelbaggage.FromContext(pub).Member(key).Value(); got == "" {
					t.Errorf("publish ctx lacks %s", key)
					return
				}
				if i%50 == 0 {
					b.Remove(key)
				}
			}
		})
	}
	wg.Wait()
	if b.Get("a") != "1" {
		t.Error("lost a member")
	}
}
