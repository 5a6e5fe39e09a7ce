package baggage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	otelbaggage "go.opentelemetry.io/otel/baggage"
)

// TestReportsAreRateLimited delivers the same over-limit baggage many times:
// the problem is reported once, and the next report after the interval
// says how many were held back. Every delivery is still cut the same way.
func TestReportsAreRateLimited(t *testing.T) {
	errs := handled(t)
	var a, b []string
	for i := range 40 {
		a = append(a, fmt.Sprintf("a%d", i), "x")
		b = append(b, fmt.Sprintf("b%d", i), "y")
	}
	msgs := []otelbaggage.Baggage{bag(t, a...), bag(t, b...)}
	for range 100 {
		ctx := contextWithDelivery(context.Background(), msgs, true)
		if n := FromContext(ctx).Len(); n != MaxMembers {
			t.Fatalf("view holds %d members, want %d", n, MaxMembers)
		}
	}
	if got := errs(); len(got) != 1 || !errors.Is(got[0], ErrLimit) {
		t.Fatalf("100 identical problems gave reports %v, want exactly one ErrLimit", got)
	}

	// The interval passes.
	limitReports.mu.Lock()
	limitReports.last = limitReports.last.Add(-reportInterval)
	limitReports.mu.Unlock()
	contextWithDelivery(context.Background(), msgs, true)
	got := errs()
	if len(got) != 2 || !errors.Is(got[1], ErrLimit) || !strings.Contains(got[1].Error(), "and 99 similar problem(s)") {
		t.Fatalf("report after the interval: %v, want ErrLimit counting the 99 held back", got)
	}
}
