package natsbroker

import "strings"

// subjectCovers reports whether every subject matched by subject (which may
// hold wildcards) is also matched by pattern. It is used to decide whether a
// destination or subscription falls under a WithJetStream subject or a
// stream's subjects.
func subjectCovers(pattern, subject string) bool {
	for {
		pt, prest, pmore := strings.Cut(pattern, ".")
		st, srest, smore := strings.Cut(subject, ".")
		switch {
		case pt == ">":
			return st != ""
		case st == ">":
			// The subject goes on where the pattern does not.
			return false
		case pt != "*" && pt != st:
			return false
		case st == "":
			return false
		}
		if !pmore || !smore {
			return pmore == smore
		}
		pattern, subject = prest, srest
	}
}

// coveredByAny reports whether one of patterns covers subject.
func coveredByAny(patterns []string, subject string) bool {
	for _, p := range patterns {
		if subjectCovers(p, subject) {
			return true
		}
	}
	return false
}
