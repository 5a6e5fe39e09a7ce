// Package wait holds the one way the transports pause: a sleep that ends
// early when the caller is told to stop.
package wait

import "time"

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
