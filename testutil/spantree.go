package testutil

import (
	"slices"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// AssertSpanTree fails t unless spans (ended spans, as a Recorder holds
// them) form exactly the tree want describes:
// the same spans with the same names, kinds, error statuses, parents and
// links, in the layout Tree prints, except that links name the spans they
// point to instead of counting them:
//
//	send orders (client) links=[create orders, create orders]
//	  process orders (consumer) links=[create orders, create orders]
//	create orders (producer)
//	create orders (producer)
//
// A child is indented two spaces under its parent, siblings come in start
// order, and separate traces follow each other. A link to a span that is
// not among spans is written "?". want may be indented as a whole and
// framed by blank lines, so that it can sit in a raw string literal in the
// test; trailing spaces are ignored. The failure shows the difference and
// the tree recorded, ready to paste.
func AssertSpanTree(t testing.TB, spans []sdktrace.ReadOnlySpan, want string) {
	t.Helper()
	got := linkTree(spans)
	w := treeLines(want)
	if !slices.Equal(w, got) {
		t.Errorf("span tree differs (-want +got):\n%s\ngot:\n%s", lineDiff(w, got), strings.Join(got, "\n"))
	}
}

// AssertSpanTree checks the spans recorded so far; see the package-level
// AssertSpanTree.
func (r *Recorder) AssertSpanTree(t testing.TB, want string) {
	t.Helper()
	AssertSpanTree(t, r.Spans(), want)
}

// linkTree renders spans as Tree does, with link targets by name.
func linkTree(spans []sdktrace.ReadOnlySpan) []string {
	names := make(map[trace.SpanID]string, len(spans))
	for _, s := range spans {
		names[s.SpanContext().SpanID()] = s.Name()
	}
	var lines []string
	walkTree(spans, func(s sdktrace.ReadOnlySpan, depth int) {
		var b strings.Builder
		writeSpanLine(&b, s, depth)
		if links := s.Links(); len(links) > 0 {
			b.WriteString(" links=[")
			for i, l := range links {
				if i > 0 {
					b.WriteString(", ")
				}
				name, ok := names[l.SpanContext.SpanID()]
				if !ok {
					name = "?"
				}
				b.WriteString(name)
			}
			b.WriteByte(']')
		}
		lines = append(lines, b.String())
	})
	return lines
}

// treeLines splits an expected tree into lines without blank lines,
// trailing spaces or the indentation common to all lines.
func treeLines(text string) []string {
	var lines []string
	prefix := ""
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimRight(l, " \t\r")
		if l == "" {
			continue
		}
		indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		if lines == nil {
			prefix = indent
		} else {
			for !strings.HasPrefix(indent, prefix) {
				prefix = prefix[:len(prefix)-1]
			}
		}
		lines = append(lines, l)
	}
	for i, l := range lines {
		lines[i] = l[len(prefix):]
	}
	return lines
}

// lineDiff shows how got differs from want, line by line: "- " for a line
// only in want, "+ " for a line only in got, "  " for a common one (a
// longest common subsequence; trees are small).
func lineDiff(want, got []string) string {
	// common[i][j]: length of the longest common subsequence of want[i:]
	// and got[j:].
	common := make([][]int, len(want)+1)
	for i := range common {
		common[i] = make([]int, len(got)+1)
	}
	for i := len(want) - 1; i >= 0; i-- {
		for j := len(got) - 1; j >= 0; j-- {
			if want[i] == got[j] {
				common[i][j] = common[i+1][j+1] + 1
			} else {
				common[i][j] = max(common[i+1][j], common[i][j+1])
			}
		}
	}
	var b strings.Builder
	i, j := 0, 0
	for i < len(want) || j < len(got) {
		switch {
		case i < len(want) && j < len(got) && want[i] == got[j]:
			b.WriteString("  " + want[i] + "\n")
			i++
			j++
		case i < len(want) && (j == len(got) || common[i+1][j] >= common[i][j+1]):
			b.WriteString("- " + want[i] + "\n")
			i++
		default:
			b.WriteString("+ " + got[j] + "\n")
			j++
		}
	}
	return b.String()
}
