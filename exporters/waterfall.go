package exporters

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Waterfall is a span exporter for people: it prints each finished trace as
// an indented tree of spans with service, kind, start offset, duration and a
// bar placing the span on the trace's timeline, errors in red. Colour is used
// only on a terminal.
//
//	trace 101112131415161718191a1b1c1d1e1f · 12.4ms · 5 spans · 3 services · 1 error
//	  send orders                checkout  producer  │▊                           │       +0    310µs
//	  └─ process orders          billing   consumer  │ ███████████▎               │   +520µs   4.90ms
//	     ├─ send invoices        billing   producer  │     █                      │  +2.40ms    280µs
//	     │  └─ process invoices  mailer    consumer  │       █████████████████████│  +3.10ms   9.30ms  ✗ smtp: i/o timeout
//	     └─ commit orders        billing   client    │           █▎               │  +5.30ms    100µs
//
// Each row: the span in its tree, its service, its kind, a bar on the
// trace's timeline (the end drawn to an eighth of a column), its start offset
// from the trace's first span and its duration, then notes: ✗ and the status
// message for errors, ⇠ for links (batch consumers link to every message's
// producer), ↰ for a parent that is not in the block. On a terminal each
// service has a colour of its own, kept across traces, and errors are red.
// Names from the network are cleaned of control characters before printing.
//
// Spans arrive one by one, in the order they end, and a messaging trace's
// root (the first send) usually ends long before the consumers do. So the
// Waterfall holds a trace's spans until the trace has been quiet for the
// linger time (WaterfallOptions.Linger) after a root ended; a span whose parent is in
// another process counts as a root here. Spans that still come later are
// printed as a continuation of their trace. Traces without a root in this
// process are printed when they have waited twenty lingers (at least 10 s),
// when more than 10,000 spans are held, and on ForceFlush or Shutdown.
//
// A Waterfall is safe for concurrent use and may be shared by several
// tracer providers in one process, such as an example running three services:
// their traces then print as one. After Shutdown it keeps working without
// holding anything back, so a shared one survives the first provider's
// shutdown.
type Waterfall struct {
	out io.Writer
	cfg waterfallConfig

	mu       sync.Mutex
	pending  map[trace.TraceID]*pendingTrace
	buffered int
	printed  map[trace.TraceID]*printedTrace
	ring     []trace.TraceID // printed, oldest first, for forgetting
	stopped  bool
}

// maxWaterfallSpans bounds the spans a Waterfall holds: beyond it the oldest
// traces are printed as they are.
const maxWaterfallSpans = 10_000

// rememberPrinted is how many printed traces a Waterfall remembers, to show
// late spans under the right trace start and parent name.
const rememberPrinted = 256

// pendingTrace is a trace whose spans are held back.
type pendingTrace struct {
	id        trace.TraceID
	spans     []wfSpan
	rooted    bool // a span without a parent in this process has ended
	firstSeen time.Time
	due       time.Time
	timer     *time.Timer
	gen       uint64
}

// printedTrace is what a Waterfall remembers of a printed trace.
type printedTrace struct {
	start time.Time
	names map[trace.SpanID]string
}

// wfSpan is the part of a span the Waterfall prints.
type wfSpan struct {
	spanID       trace.SpanID
	parentID     trace.SpanID
	parentRemote bool
	name         string
	service      string
	kind         trace.SpanKind
	start, end   time.Time
	failed       bool
	status       string
	links        int
}

// WaterfallOptions configure a Waterfall. The zero value gives the
// defaults.
type WaterfallOptions struct {
	// ForceColor prints ANSI colours whatever w is. By default colour is
	// used only when w is a terminal, and never with NO_COLOR or TERM=dumb
	// in the environment.
	ForceColor bool
	// BarWidth is the width of the timeline in columns; 0 means 40, and
	// widths below 8 are raised to 8.
	BarWidth int
	// Linger is how long a trace must be quiet after a root span ended
	// before it is printed; 0 means 500 ms. A negative Linger prints a trace
	// as soon as an export brings a root span, holds traces without a root
	// until ForceFlush or Shutdown, and starts no timers: what tests want.
	Linger time.Duration
}

type waterfallConfig struct {
	color  bool
	width  int
	linger time.Duration
}

// NewWaterfall returns a Waterfall printing to w, configured by opts (nil
// for the defaults). Writes to w are serialised, one whole trace per Write;
// a nil w discards the output.
func NewWaterfall(w io.Writer, opts *WaterfallOptions) *Waterfall {
	if w == nil {
		w = io.Discard
	}
	var o WaterfallOptions
	if opts != nil {
		o = *opts
	}
	cfg := waterfallConfig{
		color:  o.ForceColor || colorFor(w),
		width:  40,
		linger: 500 * time.Millisecond,
	}
	if o.BarWidth != 0 {
		cfg.width = max(o.BarWidth, 8)
	}
	if o.Linger != 0 {
		cfg.linger = max(o.Linger, 0)
	}
	return &Waterfall{
		out:     w,
		cfg:     cfg,
		pending: make(map[trace.TraceID]*pendingTrace),
		printed: make(map[trace.TraceID]*printedTrace),
	}
}

// maxWait is how long a trace without a root is held.
func (w *Waterfall) maxWait() time.Duration { return max(20*w.cfg.linger, 10*time.Second) }

// ExportSpans adds spans to their traces and prints the traces that are
// complete. It never blocks on anything but the writer.
func (w *Waterfall) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	var touched []*pendingTrace
	for _, s := range spans {
		ws := toWFSpan(s)
		id := s.SpanContext().TraceID()
		t := w.pending[id]
		if t == nil {
			t = &pendingTrace{id: id, firstSeen: now}
			w.pending[id] = t
		}
		if !slices.Contains(touched, t) {
			touched = append(touched, t)
		}
		t.spans = append(t.spans, ws)
		w.buffered++
		if !ws.parentID.IsValid() || ws.parentRemote {
			t.rooted = true
		}
	}

	var ready []*pendingTrace
	for _, t := range touched {
		_, late := w.printed[t.id]
		complete := t.rooted || late
		switch {
		case w.stopped || (complete && w.cfg.linger == 0):
			ready = append(ready, t)
		case complete:
			w.arm(t, now.Add(w.cfg.linger))
		case t.timer == nil && w.cfg.linger > 0:
			w.arm(t, t.firstSeen.Add(w.maxWait()))
		}
	}
	ready = append(ready, w.overflow(ready)...)
	return w.print(ready)
}

// arm schedules t to be printed at due, or at the latest maxWait after its
// first span arrived.
func (w *Waterfall) arm(t *pendingTrace, due time.Time) {
	if limit := t.firstSeen.Add(w.maxWait()); due.After(limit) {
		due = limit
	}
	if t.timer != nil {
		if due.Equal(t.due) {
			return
		}
		t.timer.Stop()
	}
	t.gen++
	t.due = due
	id, gen := t.id, t.gen
	t.timer = time.AfterFunc(time.Until(due), func() { w.fire(id, gen) })
}

// fire prints a trace whose time has come, unless it was printed or
// rescheduled meanwhile.
func (w *Waterfall) fire(id trace.TraceID, gen uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := w.pending[id]
	if t == nil || t.gen != gen {
		return
	}
	if err := w.print([]*pendingTrace{t}); err != nil {
		otel.Handle(fmt.Errorf("exporters: waterfall: %w", err))
	}
}

// overflow picks the oldest traces to print so that at most
// maxWaterfallSpans stay held, skipping those already in ready.
func (w *Waterfall) overflow(ready []*pendingTrace) []*pendingTrace {
	held := w.buffered
	for _, t := range ready {
		held -= len(t.spans)
	}
	if held <= maxWaterfallSpans {
		return nil
	}
	var rest []*pendingTrace
	for _, t := range w.pending {
		if !slices.Contains(ready, t) {
			rest = append(rest, t)
		}
	}
	slices.SortFunc(rest, func(a, b *pendingTrace) int { return a.firstSeen.Compare(b.firstSeen) })
	var out []*pendingTrace
	for _, t := range rest {
		if held <= maxWaterfallSpans {
			break
		}
		out = append(out, t)
		held -= len(t.spans)
	}
	return out
}

// ForceFlush prints every held trace, complete or not.
func (w *Waterfall) ForceFlush(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushAll()
}

// Shutdown prints every held trace. Afterwards the Waterfall holds nothing
// back: each export is printed at once.
func (w *Waterfall) Shutdown(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	return w.flushAll()
}

func (w *Waterfall) flushAll() error {
	all := make([]*pendingTrace, 0, len(w.pending))
	for _, t := range w.pending {
		all = append(all, t)
	}
	return w.print(all)
}

// print renders traces, earliest first, in one Write, and forgets them. The
// caller holds w.mu.
func (w *Waterfall) print(traces []*pendingTrace) error {
	if len(traces) == 0 {
		return nil
	}
	slices.SortFunc(traces, func(a, b *pendingTrace) int {
		return cmp.Or(earliest(a.spans).Compare(earliest(b.spans)), bytes.Compare(a.id[:], b.id[:]))
	})
	var buf bytes.Buffer
	st := newStyle(w.cfg.color)
	for _, t := range traces {
		if t.timer != nil {
			t.timer.Stop()
		}
		delete(w.pending, t.id)
		w.buffered -= len(t.spans)
		prev := w.printed[t.id]
		renderTrace(&buf, t.id, t.spans, prev, st, w.cfg.width)
		w.remember(t, prev)
	}
	_, err := w.out.Write(buf.Bytes())
	return err
}

// remember keeps the start and span names of a printed trace for late spans.
func (w *Waterfall) remember(t *pendingTrace, prev *printedTrace) {
	if prev == nil {
		prev = &printedTrace{start: earliest(t.spans), names: make(map[trace.SpanID]string, len(t.spans))}
		w.printed[t.id] = prev
		w.ring = append(w.ring, t.id)
		if len(w.ring) > rememberPrinted {
			delete(w.printed, w.ring[0])
			w.ring = slices.Delete(w.ring, 0, 1)
		}
	}
	for _, s := range t.spans {
		if len(prev.names) >= 1024 {
			break
		}
		prev.names[s.spanID] = s.name
	}
}

func earliest(spans []wfSpan) time.Time {
	var t time.Time
	for i, s := range spans {
		if i == 0 || s.start.Before(t) {
			t = s.start
		}
	}
	return t
}

func toWFSpan(s sdktrace.ReadOnlySpan) wfSpan {
	ws := wfSpan{
		spanID:       s.SpanContext().SpanID(),
		parentID:     s.Parent().SpanID(),
		parentRemote: s.Parent().IsRemote(),
		name:         s.Name(),
		kind:         s.SpanKind(),
		start:        s.StartTime(),
		end:          s.EndTime(),
		links:        len(s.Links()),
	}
	if !s.Parent().IsValid() {
		ws.parentID = trace.SpanID{}
	}
	if res := s.Resource(); res != nil {
		if v, ok := res.Set().Value(semconv.ServiceNameKey); ok {
			ws.service = v.AsString()
		}
	}
	if st := s.Status(); st.Code == codes.Error {
		ws.failed = true
		ws.status = st.Description
	}
	return ws
}
