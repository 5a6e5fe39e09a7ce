package testutil

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/internal/spantree"
)

// SpansNamed returns the spans with the given name, in the given order.
func SpansNamed(spans []sdktrace.ReadOnlySpan, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// ByStart returns a copy of spans sorted by start time.
func ByStart(spans []sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
	out := slices.Clone(spans)
	slices.SortStableFunc(out, func(a, b sdktrace.ReadOnlySpan) int {
		return a.StartTime().Compare(b.StartTime())
	})
	return out
}

// IsChildOf reports whether child's parent is parent.
func IsChildOf(child, parent sdktrace.ReadOnlySpan) bool {
	return child.Parent().SpanID() == parent.SpanContext().SpanID() &&
		child.SpanContext().TraceID() == parent.SpanContext().TraceID()
}

// IsRoot reports whether s has no parent.
func IsRoot(s sdktrace.ReadOnlySpan) bool { return !s.Parent().IsValid() }

// LinksTo reports whether s has a link to target.
func LinksTo(s, target sdktrace.ReadOnlySpan) bool {
	for _, l := range s.Links() {
		if l.SpanContext.SpanID() == target.SpanContext().SpanID() &&
			l.SpanContext.TraceID() == target.SpanContext().TraceID() {
			return true
		}
	}
	return false
}

// Tree renders spans as one indented tree per trace, children under their
// parents in start order, each line with the span name, kind, status and
// links:
//
//	send orders (producer)
//	  process orders (consumer)
//	    send invoices (producer)
//
// Spans whose parent is not among spans are printed as roots of their trace.
func Tree(spans []sdktrace.ReadOnlySpan) string {
	var b strings.Builder
	walkTree(spans, func(s sdktrace.ReadOnlySpan, depth int) {
		writeSpanLine(&b, s, depth)
		if n := len(s.Links()); n > 0 {
			fmt.Fprintf(&b, " links=%d", n)
		}
		b.WriteByte('\n')
	})
	return b.String()
}

// walkTree calls visit for every span in the order Tree prints them, with
// its depth (0 for a root).
func walkTree(spans []sdktrace.ReadOnlySpan, visit func(s sdktrace.ReadOnlySpan, depth int)) {
	// Traces in the order their first span started; in a trace, spans by
	// start time.
	spans = ByStart(spans)
	rank := make(map[trace.TraceID]int)
	for _, s := range spans {
		if _, ok := rank[s.SpanContext().TraceID()]; !ok {
			rank[s.SpanContext().TraceID()] = len(rank)
		}
	}
	rows := spantree.Order(len(spans),
		func(i int) trace.SpanID { return spans[i].SpanContext().SpanID() },
		func(i int) trace.SpanID { return spans[i].Parent().SpanID() },
		func(a, b int) int {
			return cmp.Or(
				cmp.Compare(rank[spans[a].SpanContext().TraceID()], rank[spans[b].SpanContext().TraceID()]),
				spans[a].StartTime().Compare(spans[b].StartTime()))
		})
	for _, r := range rows {
		visit(spans[r.Index], r.Depth)
	}
}

// writeSpanLine writes the indented name, kind and error status of s.
func writeSpanLine(b *strings.Builder, s sdktrace.ReadOnlySpan, depth int) {
	b.WriteString(strings.Repeat("  ", depth))
	fmt.Fprintf(b, "%s (%s)", s.Name(), s.SpanKind())
	if s.Status().Code.String() == "Error" {
		fmt.Fprintf(b, " ERROR %q", s.Status().Description)
	}
}
