package broker

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/tracebus/tracebus/broker/driver"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSpace(s.b.String()), "\n")
}

// Drops reported by a transport: the first is logged at once, those within
// the interval wait for it to end and are logged together with their count,
// and what is left when the subscription closes is logged then. Observers
// see every report.
func TestTransportDropsRateLimited(t *testing.T) {
	var buf syncBuffer
	var seen []int
	// A middleware that observes nothing is skipped.
	o := newOutcomes(driver.Operation{Destination: "orders"}, slog.New(slog.NewTextHandler(&buf, nil)), []driver.Middleware{driver.MiddlewareFuncs{}})
	o.observers = append(o.observers, func(_ context.Context, oc driver.Outcome) { seen = append(seen, oc.Messages) })
	o.Dropped(context.Background(), 3, "slow_consumer")
	o.Dropped(context.Background(), 4, "slow_consumer") // within the interval: held
	o.Dropped(context.Background(), 5, "slow_consumer")
	if got := buf.lines(); len(got) != 1 || !strings.Contains(got[0], "messages=3") {
		t.Fatalf("after three reports: %q, want one line for 3", got)
	}
	o.mu.Lock()
	timer := o.timer
	o.mu.Unlock()
	if timer == nil {
		t.Fatal("no warning scheduled for the held drops")
	}
	o.flush() // what the timer does when the interval ends, or Close
	got := buf.lines()
	if len(got) != 2 || !strings.Contains(got[1], "messages=9") || !strings.Contains(got[1], "total=12") ||
		!strings.Contains(got[1], "destination=orders") {
		t.Fatalf("after the interval: %q, want a second line for 9 of 12", got)
	}
	o.flush() // nothing pending: no line
	if n := len(buf.lines()); n != 2 {
		t.Fatalf("%d lines after an empty flush", n)
	}
	if len(seen) != 3 || seen[0]+seen[1]+seen[2] != 12 {
		t.Errorf("observer saw %v", seen)
	}

	// Another reason within the interval is held too, and logged on a line
	// of its own, with its own total.
	o.Dropped(context.Background(), 1, "max_deliveries")
	o.flush()
	got = buf.lines()
	if len(got) != 3 || !strings.Contains(got[2], "reason=max_deliveries") || !strings.Contains(got[2], "messages=1") ||
		!strings.Contains(got[2], "total=1") {
		t.Fatalf("a second reason: %q, want a third line for 1 of 1 max_deliveries", got)
	}
}
