package testutil

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
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

// walkTree calls visit for every span in the order Tree prints them:
// traces in order of their first root, each parent before its children,
// children in start order; depth is 0 for a root.
func walkTree(spans []sdktrace.ReadOnlySpan, visit func(s sdktrace.ReadOnlySpan, depth int)) {
	byID := map[trace.SpanID]bool{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = true
	}
	children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range ByStart(spans) {
		if p := s.Parent().SpanID(); s.Parent().IsValid() && byID[p] {
			children[p] = append(children[p], s)
		} else {
			roots = append(roots, s)
		}
	}
	// Group roots by trace, traces in order of their first root.
	slices.SortStableFunc(roots, func(a, b sdktrace.ReadOnlySpan) int {
		return cmp.Compare(traceOrder(roots, a), traceOrder(roots, b))
	})
	var walk func(s sdktrace.ReadOnlySpan, depth int)
	walk = func(s sdktrace.ReadOnlySpan, depth int) {
		visit(s, depth)
		for _, c := range children[s.SpanContext().SpanID()] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
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

func traceOrder(roots []sdktrace.ReadOnlySpan, s sdktrace.ReadOnlySpan) int {
	return slices.IndexFunc(roots, func(r sdktrace.ReadOnlySpan) bool {
		return r.SpanContext().TraceID() == s.SpanContext().TraceID()
	})
}
