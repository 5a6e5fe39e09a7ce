// Package wait holds the one way the transports pause: a sleep that ends
// early when the caller is told to stop, and the backoff between attempts
// of their background work.
package wait

import (
	"time"

	"github.com/tracebus/tracebus/broker"
)

// Retry is the pause after the failures-th failure in a row of a
// transport's background work (a fetch, re-establishing a consumer,
// waiting for a topic's metadata): 50ms, doubling up to 2s.
var Retry = broker.ExponentialBackoff(50*time.Millisecond, 2*time.Second)

// Sleep waits d and reports true, or returns false as soon as stop is
// closed. With d <= 0 it only reports whether stop is already closed.
func Sleep(d time.Duration, stop <-chan struct{}) bool {
	if d <= 0 {
		select {
		case <-stop:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	}
}
