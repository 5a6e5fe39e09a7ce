package exporters

import (
	"bytes"
	"cmp"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/internal/spantree"
)

// Column limits: names and services longer than this are cut with "…" so
// that one long destination cannot push every bar off the screen.
const (
	maxNameColumn    = 60
	maxServiceColumn = 24
	maxNoteRunes     = 100
)

// style holds the escape sequences of one output; all empty without colour.
type style struct {
	on                           bool
	reset, bold, dim, red, boldR string
}

// servicePalette colours services; a service keeps its colour across traces
// because the colour comes from a hash of its name. Red is kept for errors.
var servicePalette = []string{"36", "35", "33", "32", "34", "96", "95", "93", "92", "94"}

func newStyle(on bool) style {
	if !on {
		return style{}
	}
	return style{on: true, reset: "\x1b[0m", bold: "\x1b[1m", dim: "\x1b[2m", red: "\x1b[31m", boldR: "\x1b[1;31m"}
}

func (s style) service(name string) string {
	if !s.on {
		return ""
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return "\x1b[" + servicePalette[h.Sum32()%uint32(len(servicePalette))] + "m"
}

// paint wraps text in an escape sequence when colour is on.
func (s style) paint(code, text string) string {
	if !s.on || code == "" || text == "" {
		return text
	}
	return code + text + s.reset
}

// wfRow is one printed span: its tree prefix and the span.
type wfRow struct {
	prefix string
	span   *wfSpan
	name   string // cleaned and cut to the column
	note   []string
}

// renderTrace writes one trace block: a header and one row per span in tree
// order, children by start time. prev is the already printed part of the
// trace, when these spans came late.
func renderTrace(buf *bytes.Buffer, id trace.TraceID, spans []wfSpan, prev *printedTrace, st style, width int) {
	base := earliest(spans)
	if prev != nil {
		base = prev.start
	}
	end := base
	services := map[string]bool{}
	errorsN := 0
	for _, s := range spans {
		if s.end.After(end) {
			end = s.end
		}
		services[s.service] = true
		if s.failed {
			errorsN++
		}
	}
	total := end.Sub(base)

	rows, index := treeRows(spans)
	nameW, svcW := 0, 0
	for i := range rows {
		r := &rows[i]
		s := r.span
		// Deep trees may overflow the column rather than lose the name.
		r.name = cut(clean(s.name), max(maxNameColumn-runeLen(r.prefix), 16))
		nameW = max(nameW, runeLen(r.prefix)+runeLen(r.name))
		svcW = max(svcW, min(runeLen(clean(s.service)), maxServiceColumn))
		r.note = notes(s, index, prev)
	}

	// Header.
	buf.WriteString(st.paint(st.bold, "trace "+id.String()))
	if prev != nil {
		buf.WriteString(st.paint(st.bold, " (continued)"))
	}
	fmt.Fprintf(buf, " · %s · %s · %s", fmtDuration(total), plural(len(spans), "span"), plural(len(services), "service"))
	if errorsN > 0 {
		buf.WriteString(" · " + st.paint(st.boldR, plural(errorsN, "error")))
	}
	buf.WriteByte('\n')

	for _, r := range rows {
		s := r.span
		svcColor := st.service(s.service)
		barColor := svcColor
		nameText := r.name
		if s.failed {
			barColor = st.red
			nameText = st.paint(st.red, nameText)
		}
		buf.WriteString("  ")
		buf.WriteString(st.paint(st.dim, r.prefix))
		buf.WriteString(nameText)
		pad(buf, nameW-runeLen(r.prefix)-runeLen(r.name))
		buf.WriteString("  ")
		svc := cut(clean(s.service), maxServiceColumn)
		buf.WriteString(st.paint(svcColor, svc))
		pad(buf, svcW-runeLen(svc))
		buf.WriteString("  ")
		kind := s.kind.String()
		buf.WriteString(st.paint(st.dim, kind))
		pad(buf, len("producer")-len(kind))
		buf.WriteString("  ")
		buf.WriteString(st.paint(st.dim, "│"))
		buf.WriteString(st.paint(barColor, bar(s.start.Sub(base), s.end.Sub(base), total, width)))
		buf.WriteString(st.paint(st.dim, "│"))
		fmt.Fprintf(buf, " %s %8s", st.paint(st.dim, fmt.Sprintf("%8s", "+"+fmtDuration(s.start.Sub(base)))), fmtDuration(s.end.Sub(s.start)))
		for _, n := range r.note {
			buf.WriteString("  ")
			if strings.HasPrefix(n, "✗") {
				buf.WriteString(st.paint(st.boldR, n))
			} else {
				buf.WriteString(st.paint(st.dim, n))
			}
		}
		buf.WriteByte('\n')
	}
	buf.WriteByte('\n')
}

// treeRows orders spans as a tree (see spantree.Order), children by start
// time, and indexes them by span ID (the first span with each ID).
func treeRows(spans []wfSpan) ([]wfRow, map[trace.SpanID]int) {
	tree := spantree.Order(len(spans),
		func(i int) trace.SpanID { return spans[i].spanID },
		func(i int) trace.SpanID { return spans[i].parentID },
		func(a, b int) int {
			return cmp.Or(spans[a].start.Compare(spans[b].start), bytes.Compare(spans[a].spanID[:], spans[b].spanID[:]))
		})
	rows := make([]wfRow, len(tree))
	index := make(map[trace.SpanID]int, len(spans))
	for i, r := range tree {
		rows[i] = wfRow{prefix: r.Prefix, span: &spans[r.Index]}
	}
	for i, s := range spans {
		if _, dup := index[s.spanID]; !dup {
			index[s.spanID] = i
		}
	}
	return rows, index
}

// notes explains what the bar cannot show: an error, links, a parent that
// is elsewhere.
func notes(s *wfSpan, index map[trace.SpanID]int, prev *printedTrace) []string {
	var out []string
	if s.failed {
		msg := clean(s.status)
		if msg == "" {
			msg = "error"
		}
		out = append(out, "✗ "+cut(msg, maxNoteRunes))
	}
	if s.links > 0 {
		out = append(out, "⇠ "+plural(s.links, "link"))
	}
	if _, here := index[s.parentID]; s.parentID.IsValid() && !here {
		switch name, ok := prev.name(s.parentID); {
		case ok:
			out = append(out, "↰ under "+cut(clean(name), maxNameColumn))
		case s.parentRemote:
			out = append(out, "↰ remote parent "+s.parentID.String())
		default:
			out = append(out, "↰ parent "+s.parentID.String()+" not seen")
		}
	}
	return out
}

func (p *printedTrace) name(id trace.SpanID) (string, bool) {
	if p == nil {
		return "", false
	}
	n, ok := p.names[id]
	return n, ok
}

// eighths are the left-aligned partial blocks, 1/8 to 7/8 of a cell.
var eighths = []string{"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"}

// bar draws [start, end) of a timeline of length total in width cells. The
// start is rounded down to a cell; the end is drawn to an eighth of a cell,
// so short spans stay distinguishable. Every span gets at least an eighth.
func bar(start, end, total time.Duration, width int) string {
	if total <= 0 {
		total = 1
	}
	pos := func(d time.Duration) float64 {
		return math.Min(math.Max(float64(d)/float64(total), 0), 1) * float64(width)
	}
	first := min(int(pos(start)), width-1)
	last8 := int(math.Round(pos(end) * 8))
	last8 = min(max(last8, first*8+1), width*8)
	full, part := (last8-first*8)/8, (last8-first*8)%8

	var b strings.Builder
	b.WriteString(strings.Repeat(" ", first))
	b.WriteString(strings.Repeat("█", full))
	b.WriteString(eighths[part])
	used := first + full
	if part > 0 {
		used++
	}
	b.WriteString(strings.Repeat(" ", width-used))
	return b.String()
}

// fmtDuration prints a duration with three significant digits or so:
// 850ns, 420µs, 4.20ms, 12.4ms, 250ms, 1.25s, 2m05s.
func fmtDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Microsecond:
		return strconv.FormatInt(int64(d), 10) + "ns"
	case d < time.Millisecond:
		return strconv.FormatInt(int64(d/time.Microsecond), 10) + "µs"
	case d < 10*time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + "ms"
	case d < 100*time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
	case d < time.Second:
		return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
	default:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// clean makes a string from the outside safe to print on a terminal: control
// characters (escape sequences, newlines) and bidirectional overrides become
// U+FFFD, as does invalid UTF-8.
func clean(s string) string {
	ok := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			r = '\uFFFD'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// cut shortens s to n runes, ending in "…" when something was cut.
func cut(s string, n int) string {
	if runeLen(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func runeLen(s string) int { return utf8.RuneCountInString(s) }

func pad(buf *bytes.Buffer, n int) {
	for range n {
		buf.WriteByte(' ')
	}
}
