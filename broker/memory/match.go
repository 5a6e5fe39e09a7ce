package memory

import "strings"

// match reports whether subject matches pattern, NATS style: tokens split
// on ".", "*" matches exactly one token, ">" as the last token matches one
// or more remaining tokens.
func match(pattern, subject string) bool {
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
