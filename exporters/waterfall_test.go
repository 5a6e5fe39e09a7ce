package exporters_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/exporters"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// t0 is the wall-clock origin of the hand-made traces.
var t0 = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

// stubs builds spans with explicit IDs and times, so the waterfall output
// is the same on every run.
type stubs struct {
	trace trace.TraceID
}

type stubSpan struct {
	id, parent     byte
	remote         bool
	name, service  string
	kind           trace.SpanKind
	start, end     time.Duration
	err            string
	links          int
	traceOverride  *trace.TraceID
	parentOverride *trace.SpanID
}

func traceID(b byte) trace.TraceID {
	var id trace.TraceID
	for i := range id {
		id[i] = b + byte(i)
	}
	return id
}

func spanID(b byte) trace.SpanID {
	var id trace.SpanID
	if b == 0 {
		return id
	}
	for i := range id {
		id[i] = b
	}
	return id
}

func (st stubs) spans(list ...stubSpan) []sdktrace.ReadOnlySpan {
	var out tracetest.SpanStubs
	for _, s := range list {
		tid := st.trace
		if s.traceOverride != nil {
			tid = *s.traceOverride
		}
		parent := trace.SpanContext{}
		pid := spanID(s.parent)
		if s.parentOverride != nil {
			pid = *s.parentOverride
		}
		if pid.IsValid() {
			parent = trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: tid, SpanID: pid, TraceFlags: trace.FlagsSampled, Remote: s.remote,
			})
		}
		stub := tracetest.SpanStub{
			Name: s.name,
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: tid, SpanID: spanID(s.id), TraceFlags: trace.FlagsSampled,
			}),
			Parent:    parent,
			SpanKind:  s.kind,
			StartTime: t0.Add(s.start),
			EndTime:   t0.Add(s.end),
			Resource:  resource.NewSchemaless(semconv.ServiceName(s.service)),
		}
		if s.err != "" {
			stub.Status = sdktrace.Status{Code: codes.Error, Description: s.err}
		}
		for i := range s.links {
			stub.Links = append(stub.Links, sdktrace.Link{
				SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
					TraceID: traceID(byte(0x40 + i)), SpanID: spanID(byte(0x40 + i)), TraceFlags: trace.FlagsSampled,
				}),
				Attributes: []attribute.KeyValue{semconv.MessagingKafkaOffset(i)},
			})
		}
		out = append(out, stub)
	}
	return out.Snapshots()
}

const (
	us = time.Microsecond
	ms = time.Millisecond
)

// orderTrace is a message travelling through three services; the mailer
// fails. Its spans are listed in the order they end, children first.
var (
	orderTrace = stubs{trace: traceID(0x10)}
	orderLate  = []stubSpan{
		{id: 2, parent: 1, remote: true, name: "process orders", service: "billing", kind: trace.SpanKindConsumer, start: 520 * us, end: 5420 * us},
		{id: 3, parent: 2, name: "send invoices", service: "billing", kind: trace.SpanKindProducer, start: 2400 * us, end: 2680 * us},
		{id: 4, parent: 3, remote: true, name: "process invoices", service: "mailer", kind: trace.SpanKindConsumer, start: 3100 * us, end: 12400 * us, err: "smtp: dial tcp 10.0.0.7:25: i/o timeout"},
		{id: 5, parent: 2, name: "commit orders", service: "billing", kind: trace.SpanKindClient, start: 5300 * us, end: 5400 * us},
	}
	orderRoot = stubSpan{id: 1, name: "send orders", service: "checkout", kind: trace.SpanKindProducer, start: 0, end: 310 * us}
)

func renderGolden(t *testing.T, color bool) string {
	t.Helper()
	ctx := context.Background()
	var out bytes.Buffer
	w := exporters.NewWaterfall(&out, &exporters.WaterfallOptions{ForceColor: color, Linger: time.Hour})

	// Out of order: the consumers' spans arrive before the root, in two
	// exports. Nothing is printed until the root's trace is flushed.
	if err := w.ExportSpans(ctx, orderTrace.spans(orderLate[3], orderLate[2])); err != nil {
		t.Fatal(err)
	}
	if err := w.ExportSpans(ctx, orderTrace.spans(orderLate[1], orderLate[0], orderRoot)); err != nil {
		t.Fatal(err)
	}

	// A batch consumer: a root with links to the messages' producers, and
	// a span whose parent never arrives.
	batch := stubs{trace: traceID(0x20)}
	if err := w.ExportSpans(ctx, batch.spans(
		stubSpan{id: 0x21, name: "process orders", service: "billing", kind: trace.SpanKindConsumer, start: 1 * ms, end: 1*ms + 38*ms, links: 3},
		stubSpan{id: 0x22, parent: 0x21, name: "UPDATE invoices", service: "billing", kind: trace.SpanKindClient, start: 4 * ms, end: 31 * ms},
		stubSpan{id: 0x23, parent: 0x29, name: "orphan work", service: "billing", kind: trace.SpanKindInternal, start: 20 * ms, end: 25 * ms},
	)); err != nil {
		t.Fatal(err)
	}

	// Hostile and long names from the network are cleaned and cut.
	hostile := stubs{trace: traceID(0x30)}
	if err := w.ExportSpans(ctx, hostile.spans(
		stubSpan{id: 0x31, name: "process \x1b[2Jevil\nsubject", service: "ingest\x07", kind: trace.SpanKindConsumer, start: 0, end: 2 * time.Second},
		stubSpan{id: 0x32, parent: 0x31, name: "send " + strings.Repeat("very.long.subject.", 6), service: "ingest\x07", kind: trace.SpanKindProducer, start: 1200 * ms, end: 1200 * ms},
	)); err != nil {
		t.Fatal(err)
	}
	if err := w.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}

	// A span of the first trace that ends after it was printed comes out as
	// a continuation, timed from the trace's start, under its parent's name.
	if err := w.ExportSpans(ctx, orderTrace.spans(
		stubSpan{id: 6, parent: 2, name: "ack orders", service: "billing", kind: trace.SpanKindClient, start: 5500 * us, end: 14 * ms},
	)); err != nil {
		t.Fatal(err)
	}
	if err := w.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestWaterfallGolden(t *testing.T) {
	for _, tc := range []struct {
		file  string
		color bool
	}{
		{"waterfall.golden", false},
		{"waterfall_color.golden", true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got := renderGolden(t, tc.color)
			path := filepath.Join("testdata", tc.file)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (go test -run TestWaterfallGolden -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the Waterfall's timer goroutine and
// the test reading it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestWaterfallLinger(t *testing.T) {
	ctx := context.Background()
	var out syncBuffer
	w := exporters.NewWaterfall(&out, &exporters.WaterfallOptions{Linger: 20 * time.Millisecond})
	defer w.Shutdown(ctx)

	// A child without its root is held: its trace is not finished.
	if err := w.ExportSpans(ctx, orderTrace.spans(orderLate[1])); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "" {
		t.Fatalf("printed a trace without its root:\n%s", got)
	}
	// The root arrives; after the linger the whole trace is printed once.
	if err := w.ExportSpans(ctx, orderTrace.spans(orderRoot, orderLate[0])); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the trace to be printed", func() bool { return out.String() != "" })
	got := out.String()
	if strings.Count(got, "trace ") != 1 || !strings.Contains(got, "3 spans") || !strings.Contains(got, "  └─ process orders ") || !strings.Contains(got, "     └─ send invoices ") {
		t.Errorf("want one block with the three spans as a tree:\n%s", got)
	}
}

func TestWaterfallSDKConcurrent(t *testing.T) {
	ctx := context.Background()
	var out syncBuffer
	w := exporters.NewWaterfall(&out, &exporters.WaterfallOptions{Linger: time.Millisecond})
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(w))
	tracer := tp.Tracer("t")

	const workers, traces = 8, 40
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range traces {
				ctx, root := tracer.Start(ctx, "root")
				_, child := tracer.Start(ctx, "child")
				child.End()
				_, child2 := tracer.Start(ctx, "child2")
				child2.End()
				root.End()
			}
		})
	}
	wg.Wait()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if n := strings.Count(got, "\ntrace ") + 1; n != workers*traces {
		t.Errorf("%d traces printed, want %d", n, workers*traces)
	}
	if n := strings.Count(got, "(continued)"); n != 0 {
		t.Errorf("%d traces split although every root ended last", n)
	}
	if n := strings.Count(got, "└─ child2 "); n != workers*traces {
		t.Errorf("%d child2 rows, want %d", n, workers*traces)
	}
}

// TestWaterfallBounded holds at most 10,000 spans: beyond that the oldest
// traces are printed as they are.
func TestWaterfallBounded(t *testing.T) {
	ctx := context.Background()
	var out syncBuffer
	w := exporters.NewWaterfall(&out, &exporters.WaterfallOptions{Linger: -1})
	missing := trace.SpanID{9, 9, 9, 9, 9, 9, 9, 9}
	orphan := func(i int) []sdktrace.ReadOnlySpan {
		id := trace.TraceID{0xaa, byte(i >> 16), byte(i >> 8), byte(i)}
		return stubs{trace: id}.spans(stubSpan{id: 1, parentOverride: &missing, name: "orphan", service: "s", end: ms})
	}
	for i := range 10_000 {
		if err := w.ExportSpans(ctx, orphan(i)); err != nil {
			t.Fatal(err)
		}
	}
	if out.String() != "" {
		t.Fatal("printed orphans before the bound was reached")
	}
	if err := w.ExportSpans(ctx, orphan(10_000)); err != nil {
		t.Fatal(err)
	}
	first := (trace.TraceID{0xaa}).String()
	if got := out.String(); strings.Count(got, "trace ") != 1 || !strings.Contains(got, "trace "+first) {
		t.Errorf("want the oldest trace %s printed, got:\n%s", first, got)
	}
	if err := w.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "trace "); n != 10_001 {
		t.Errorf("%d traces after Shutdown, want all 10001", n)
	}
}

// TestWaterfallAfterShutdown: a Waterfall shared by several providers keeps
// printing after the first one shuts it down, holding nothing back.
func TestWaterfallAfterShutdown(t *testing.T) {
	ctx := context.Background()
	var out syncBuffer
	w := exporters.NewWaterfall(&out, nil)
	if err := w.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.ExportSpans(ctx, orderTrace.spans(orderLate[1])); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "send invoices") {
		t.Errorf("span exported after Shutdown not printed:\n%s", out.String())
	}
}

// TestWaterfallNilWriter: a nil writer discards the output rather than
// panicking on the first trace.
func TestWaterfallNilWriter(t *testing.T) {
	ctx := context.Background()
	w := exporters.NewWaterfall(nil, &exporters.WaterfallOptions{Linger: -1})
	if err := w.ExportSpans(ctx, orderTrace.spans(orderLate[1])); err != nil {
		t.Fatal(err)
	}
	if err := w.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestWaterfallColorDetection(t *testing.T) {
	devNull, err := os.Open(os.DevNull) // a character device, like a terminal
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	if exporters.ColorFor(&bytes.Buffer{}) {
		t.Error("colour for a buffer")
	}
	if !exporters.ColorFor(devNull) {
		t.Error("no colour for a character device")
	}
	t.Setenv("NO_COLOR", "1")
	if exporters.ColorFor(devNull) {
		t.Error("colour despite NO_COLOR")
	}
	t.Setenv("NO_COLOR", "")
	t.Setenv("TERM", "dumb")
	if exporters.ColorFor(devNull) {
		t.Error("colour on TERM=dumb")
	}
}
