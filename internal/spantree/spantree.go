// Package spantree orders spans as trees, the one way tracebus does it: the
// terminal waterfall of package exporters draws its rows from it, and
// testutil.Tree prints span trees in tests with it.
//
// It works on indexes, so that any span representation fits:
//
//	rows := spantree.Order(len(spans),
//		func(i int) trace.SpanID { return spans[i].SpanContext().SpanID() },
//		func(i int) trace.SpanID { return spans[i].Parent().SpanID() },
//		func(a, b int) int { return spans[a].StartTime().Compare(spans[b].StartTime()) })
package spantree

import (
	"cmp"
	"slices"

	"go.opentelemetry.io/otel/trace"
)

// Row is one span of a tree, in the order the tree is printed.
type Row struct {
	// Index is the span's index in the spans given to Order.
	Index int
	// Depth is 0 for a root, 1 for its children, and so on.
	Depth int
	// Prefix draws the span's place in the tree with box characters:
	// "" for a root, "├─ " or "└─ " for a child, after "│  " or "   " for
	// each ancestor below the root.
	Prefix string
}

// Order returns the n spans as tree rows. A span whose parent is not among
// them (or is invalid, or is itself) is a root; children follow their
// parent. Roots and the children of each span are sorted by compare, ties
// by index. When several spans share an ID, children hang under the first.
// A parent cycle (impossible from the SDK, possible from hand-made spans)
// cannot loop: every span appears exactly once.
func Order(n int, id, parent func(i int) trace.SpanID, compare func(a, b int) int) []Row {
	index := make(map[trace.SpanID]int, n)
	for i := range n {
		if _, dup := index[id(i)]; !dup {
			index[id(i)] = i
		}
	}
	children := make(map[trace.SpanID][]int)
	var roots []int
	for i := range n {
		p := parent(i)
		if j, ok := index[p]; ok && p.IsValid() && j != i {
			children[p] = append(children[p], i)
		} else {
			roots = append(roots, i)
		}
	}
	order := func(a, b int) int { return cmp.Or(compare(a, b), cmp.Compare(a, b)) }
	slices.SortFunc(roots, order)
	for _, c := range children {
		slices.SortFunc(c, order)
	}

	rows := make([]Row, 0, n)
	seen := make([]bool, n)
	var walk func(i, depth int, prefix, indent string)
	walk = func(i, depth int, prefix, indent string) {
		if seen[i] {
			return
		}
		seen[i] = true
		rows = append(rows, Row{Index: i, Depth: depth, Prefix: prefix})
		kids := children[id(i)]
		if index[id(i)] != i {
			kids = nil // a duplicate span ID: its children hang under the first
		}
		for k, c := range kids {
			if k == len(kids)-1 {
				walk(c, depth+1, indent+"└─ ", indent+"   ")
			} else {
				walk(c, depth+1, indent+"├─ ", indent+"│  ")
			}
		}
	}
	for _, r := range roots {
		walk(r, 0, "", "")
	}
	// Spans caught in a parent cycle were not reached from any root.
	for i := range n {
		if !seen[i] {
			walk(i, 0, "", "")
		}
	}
	return rows
}
