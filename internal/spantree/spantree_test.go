package spantree_test

import (
	"fmt"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/internal/spantree"
)

func id(n byte) trace.SpanID { return trace.SpanID{7: n} }

// order prints the rows for spans given as (id, parent, start) triples.
func order(spans [][3]byte) string {
	rows := spantree.Order(len(spans),
		func(i int) trace.SpanID { return id(spans[i][0]) },
		func(i int) trace.SpanID { return id(spans[i][1]) },
		func(a, b int) int { return int(spans[a][2]) - int(spans[b][2]) })
	out := ""
	for _, r := range rows {
		out += fmt.Sprintf("%s%d/%d;", r.Prefix, spans[r.Index][0], r.Depth)
	}
	return out
}

func TestOrder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spans [][3]byte
		want  string
	}{
		{"children by start under their parent", [][3]byte{{3, 1, 5}, {1, 0, 0}, {2, 1, 2}, {4, 2, 3}},
			"1/0;├─ 2/1;│  └─ 4/2;└─ 3/1;"},
		{"missing parent makes a root", [][3]byte{{2, 9, 1}, {1, 0, 0}}, "1/0;2/0;"},
		{"self parent is a root", [][3]byte{{1, 1, 0}}, "1/0;"},
		{"cycle printed once", [][3]byte{{1, 2, 0}, {2, 1, 1}}, "1/0;└─ 2/1;"},
		{"duplicate id: children under the first", [][3]byte{{1, 0, 0}, {1, 0, 1}, {2, 1, 2}}, "1/0;└─ 2/1;1/0;"},
	} {
		if got := order(tc.spans); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}
