package testkit

import (
	"testing"
	"time"
)

// Inbox collects what handlers receive, for a test to wait on.
type Inbox[T any] struct {
	ch   chan T
	wait time.Duration
}

// NewInbox returns an inbox whose Next waits up to wait.
func NewInbox[T any](wait time.Duration) *Inbox[T] {
	return &Inbox[T]{ch: make(chan T, 10_000), wait: wait}
}

// Put records v; it never blocks a handler for long.
func (in *Inbox[T]) Put(v T) {
	select {
	case in.ch <- v:
	case <-time.After(in.wait):
	}
}

// Next returns the next value, failing the test when none arrives in time.
func (in *Inbox[T]) Next(t testing.TB) T {
	t.Helper()
	select {
	case v := <-in.ch:
		return v
	case <-time.After(in.wait):
		var zero T
		t.Fatalf("nothing arrived within %v", in.wait)
		return zero
	}
}

// TakeN returns the next n values, failing the test when they do not all
// arrive in time.
func (in *Inbox[T]) TakeN(t testing.TB, n int) []T {
	t.Helper()
	out := make([]T, 0, n)
	deadline := time.NewTimer(in.wait)
	defer deadline.Stop()
	for len(out) < n {
		select {
		case v := <-in.ch:
			out = append(out, v)
		case <-deadline.C:
			t.Fatalf("got %d of %d values within %v", len(out), n, in.wait)
		}
	}
	return out
}

// Len returns how many values are waiting.
func (in *Inbox[T]) Len() int { return len(in.ch) }
