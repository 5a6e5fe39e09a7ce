package monitoring

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// promqlKeywords are the words of PromQL that can stand where a metric name
// stands: aggregation operators (which may be followed by by/without before
// their parenthesis), set and comparison keywords and the grouping
// modifiers.
var promqlKeywords = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
	"inf": true, "nan": true,
}

// metricNames returns the metric names a PromQL expression selects, sorted
// and without repeats. It is a lexer, not a parser: it skips strings, label
// matchers ({...}), ranges ([...]), numbers and durations, function names
// (an identifier before "(") and keywords, with the label lists of by,
// without, on, ignoring, group_left and group_right; what is left is a
// metric name. A __name__ matcher is refused: the check that every name is
// one tracebus emits could not see through it.
//
// Prometheus's own parser (github.com/prometheus/prometheus/promql/parser)
// would be exact, but it pulls the whole Prometheus module into go.mod for
// one test; the expressions here are ours, and TestMetricNames pins what
// this lexer must see in them.
func metricNames(expr string) ([]string, error) {
	var names []string
	s := expr
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end := stringEnd(s, i)
			if end < 0 {
				return nil, fmt.Errorf("unterminated string in %q", expr)
			}
			i = end
		case c == '{' || c == '[':
			closer := byte('}')
			if c == '[' {
				closer = ']'
			}
			end, err := bracketEnd(s, i, closer)
			if err != nil {
				return nil, fmt.Errorf("%w in %q", err, expr)
			}
			if c == '{' && strings.Contains(s[i:end], "__name__") {
				return nil, fmt.Errorf("a __name__ matcher in %q: select metrics by name", expr)
			}
			i = end
		case c >= '0' && c <= '9' || c == '.':
			for i < len(s) && (isIdentChar(s[i]) || s[i] == '.') {
				i++
			}
		case isIdentStart(c):
			start := i
			for i < len(s) && isIdentChar(s[i]) {
				i++
			}
			word := s[start:i]
			next := i
			for next < len(s) && (s[next] == ' ' || s[next] == '\t' || s[next] == '\n') {
				next++
			}
			followedByParen := next < len(s) && s[next] == '('
			switch {
			case word == "by" || word == "without" || word == "on" || word == "ignoring" ||
				word == "group_left" || word == "group_right":
				if followedByParen { // a label list, not an expression
					end, err := bracketEnd(s, next, ')')
					if err != nil {
						return nil, fmt.Errorf("%w in %q", err, expr)
					}
					i = end
				}
			case promqlKeywords[word], followedByParen:
				// a keyword or a function
			default:
				if !slices.Contains(names, word) {
					names = append(names, word)
				}
			}
		default:
			i++
		}
	}
	slices.Sort(names)
	return names, nil
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':'
}

func isIdentChar(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// stringEnd returns the index just past the string literal opening at
// s[start], or -1 when it is not closed.
func stringEnd(s string, start int) int {
	q := s[start]
	for i := start + 1; i < len(s); i++ {
		switch {
		case s[i] == '\\' && q != '`':
			i++
		case s[i] == q:
			return i + 1
		}
	}
	return -1
}

// bracketEnd returns the index just past the closer of the bracket opening
// at s[start], skipping strings inside it.
func bracketEnd(s string, start int, closer byte) (int, error) {
	for i := start + 1; i < len(s); i++ {
		switch s[i] {
		case '"', '\'', '`':
			end := stringEnd(s, i)
			if end < 0 {
				return 0, fmt.Errorf("unterminated string")
			}
			i = end - 1
		case closer:
			return i + 1, nil
		}
	}
	return 0, fmt.Errorf("unclosed %q", s[start])
}

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`sum by (job, le) (rate(a_bucket{job=~"$service",x="by (b)"}[$__rate_interval]))`, []string{"a_bucket"}},
		{`histogram_quantile(0.99, sum(rate(a_bucket[5m])) by (le)) > 1`, []string{"a_bucket"}},
		{`(sum(rate(a{e!=""}[1m])) or vector(0)) / sum without (x) (b)`, []string{"a", "b"}},
		{`x unless on (messaging_system) y > 0 and ignoring(z) group_left(w) q offset 5m`, []string{"q", "x", "y"}},
		{`label_replace(rate(c_total{e="o'k"}[1m]), "error_type", "ok", "error_type", "")`, []string{"c_total"}},
		{`count by (job) (s_total or c_total) * 1e3 + 0x1f`, []string{"c_total", "s_total"}},
		{`topk(3, g) - min_over_time(h[1m:10s])`, []string{"g", "h"}},
	} {
		got, err := metricNames(tc.expr)
		if err != nil {
			t.Errorf("metricNames(%q): %v", tc.expr, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
	for _, bad := range []string{`{__name__="a"}`, `rate(a[1m)`, `a{b="c}`, `sum(a{b="c"`} {
		if names, err := metricNames(bad); err == nil {
			t.Errorf("metricNames(%q) = %q, want an error", bad, names)
		}
	}
}
