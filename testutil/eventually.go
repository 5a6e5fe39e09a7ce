package testutil

import (
	"testing"
	"time"
)

// Eventually polls cond every few milliseconds until it holds, failing the
// test with msg when it does not within wait.
func Eventually(t testing.TB, wait time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %s", wait, msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
