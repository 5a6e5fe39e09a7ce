// Package subject matches destinations against subscription patterns the
// way NATS does, for the memory transport's routing and for the broker's
// check that a subscription does not send to itself.
package subject

import "strings"

// Match reports whether subject matches pattern, NATS style: tokens split
// on ".", "*" matches exactly one token, ">" as the last token matches one
// or more remaining tokens. Without wildcards it is equality, which is
// also what a Kafka topic needs: topic names cannot hold "*" or ">".
func Match(pattern, subject string) bool {
	if pattern == subject {
		return true
	}
	for {
		var p, s string
		p, pattern, _ = strings.Cut(pattern, ".")
		if p == ">" && pattern == "" {
			return subject != ""
		}
		if subject == "" {
			return false
		}
		s, subject, _ = strings.Cut(subject, ".")
		if p != "*" && p != s {
			return false
		}
		if pattern == "" || subject == "" {
			return pattern == "" && subject == ""
		}
	}
}
