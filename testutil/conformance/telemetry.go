package conformance

import (
	"context"
	"strconv"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
)

// TestTelemetry is the telemetry suite: with the Telemetry middleware
// installed, every publish and consume over the transport must produce
// exactly the spans, links, attributes and metric points of the tracebus
// telemetry contract (semantic conventions v1.43.0). Attributes that depend
// on the system (partitions, offsets, keys) are expected according to the
// transport's Info and Features. Tests for features the transport does not
// declare are skipped.
func TestTelemetry(t *testing.T, s Suite) {
	tests := []struct {
		name string
		need bool
		run  func(*testing.T, Suite)
	}{
		{"PublishConsume", true, testTelPublishConsume},
		{"TypedMessageID", s.Features.MessageID, testTelTypedMessageID},
		{"TwoHopChain", true, testTelChain},
		{"NoTraceContext", true, testTelNoContext},
		{"HandlerError", true, testTelHandlerError},
		{"HandlerPanic", true, testTelPanic},
		{"SpanInHandlerContext", true, testTelSpanInContext},
		{"BatchPublishBatchConsume", s.Features.Batch, testTelBatchBatch},
		{"BatchPublishSingleConsume", true, testTelBatchSingle},
		{"SinglePublishesBatchConsume", s.Features.Batch && !s.Features.Synchronous, testTelSinglesBatch},
		{"LinkedProcessSpans", true, testTelLinked},
		{"WithoutCreateSpans", true, testTelNoCreate},
		{"PublishFails", true, testTelPublishFails},
		{"WildcardTemplate", s.Features.Wildcards, testTelWildcard},
		{"SettleSpans", true, testTelSettle},
		{"BodySize", true, testTelBodySize},
		{"RequestReply", true, testTelRequest},
		{"RequestErrorReply", true, testTelRequestError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.need {
				t.Skip("transport does not declare the feature")
			}
			tc.run(t, s)
		})
	}
}

// The group and durable name every telemetry subscription uses, as the
// conformance suite does: Kafka needs a group, JetStream a durable name.
const telGroup = "tel"

func (e *telEnv) subscribe(t *testing.T, dest string, h func(context.Context, *broker.Message) error, extra ...broker.SubscribeOption) {
	t.Helper()
	opts := e.s.Options(append([]broker.SubscribeOption{broker.Group(telGroup), broker.Name(telGroup)}, extra...)...)
	if err := e.b.Subscribe(dest, h, opts...); err != nil {
		t.Fatalf("subscribe %s: %v", dest, err)
	}
}

func (e *telEnv) subscribeBatch(t *testing.T, dest string, size int, h func(context.Context, []*broker.Message) error) {
	t.Helper()
	// The wait is long so that a batch forms by size, not by time: the
	// expectations count batches exactly.
	opts := e.s.Options(broker.Group(telGroup), broker.Name(telGroup),
		broker.Batch(size, e.s.Wait()/2))
	if err := e.b.SubscribeBatch(dest, h, opts...); err != nil {
		t.Fatalf("subscribe batch %s: %v", dest, err)
	}
}

// message returns a message to dest with the id and key the transport can
// carry.
func (e *telEnv) message(dest, body string) *broker.Message {
	m := &broker.Message{Destination: dest, Body: []byte(body)}
	if e.s.Features.MessageID {
		m.ID = "id-" + body + "-" + dest
	}
	if e.s.Features.Keys {
		m.Key = []byte("key-" + body)
	}
	return m
}

func (e *telEnv) publish(t *testing.T, ctx context.Context, m *broker.Message) {
	t.Helper()
	if err := e.b.Publish(ctx, m); err != nil {
		t.Fatalf("publish to %s: %v", m.Destination, err)
	}
}

// collect is a handler that records a copy of each message it gets.
func collect(in *testkit.Inbox[*broker.Message]) func(context.Context, *broker.Message) error {
	return func(_ context.Context, m *broker.Message) error {
		in.Put(m.Clone())
		return nil
	}
}

func testTelPublishConsume(t *testing.T, s Suite) {
	e := newTelEnv(t, s)
	dest := s.Destination(t)
	in := testkit.NewInbox[*broker.Message](s.Wait())
	e.subscribe(t, dest, collect(in))
	s.Start(t, e.b)

	sent := e.message(dest, "hello")
	e.publish(t, context.Background(), sent)
	got := in.Next(t)
	e.close(t)

	e.assertSpanCount(t, 2)
	send := e.rec.SpanByName(t, "send "+dest)
	proc := e.rec.SpanByName(t, "process "+dest)
	op := e.consumeOp(t, dest)
	if op.Group != telGroup {
		t.Errorf("operation group %q, want %q", op.Group, telGroup)
	}

	assertSpan(t, send, "send "+dest, trace.SpanKindProducer, e.sendAttrs(sent))
	assertRoot(t, send)
	assertNoLinks(t, send)
	assertOK(t, send)
	if sc := injected(t, got.Headers); sc.SpanID() != send.SpanContext().SpanID() {
		t.Errorf("message carries span %s, want the send span %s", sc.SpanID(), send.SpanContext().SpanID())
	}

	if s.Features.MessageID && got.ID != sent.ID {
		t.Errorf("delivered id %q, want %q", got.ID, sent.ID)
	}
	assertSpan(t, proc, "process "+dest, trace.SpanKindConsumer, e.processAttrs(op, got))
	assertChild(t, proc, send)
	assertNoLinks(t, proc)
	assertOK(t, proc)

	partition := ""
	if s.Features.Partitions {
		partition = strconv.Itoa(int(got.Delivery.Partition))
	}
	dur, cnt := e.sendPoint(dest)
	procPt := e.processPoint(op, got.Destination, partition)
	e.assertMetrics(t, metricsWant{
		opDuration:   []point{{dur, 1}},
		sent:         []point{{cnt, 1}},
		procDuration: []point{{procPt, 1}},
		consumed:     []point{{procPt, 1}},
	})
}

func testTelChain(t *testing.T, s Suite) {
	e := newTelEnv(t, s)
	dest1, dest2 := s.Destination(t), s.Destination(t)+"-2"
	if s.Prepare != nil {
		s.Prepare(t, dest2)
	}
	in := testkit.NewInbox[*broker.Message](s.Wait())
	e.subscribe(t, dest1, func(ctx context.Context, m *broker.Message) error {
		return e.b.Publish(ctx, e.message(dest2, string(m.Body)))
	})
	e.subscribe(t, dest2, collect(in))
	s.Start(t, e.b)

	e.publish(t, context.Background(), e.message(dest1, "hop"))
	in.Next(t)
	e.close(t)

	e.assertSpanCount(t, 4)
	send1 := e.rec.SpanByName(t, "send "+dest1)
	proc1 := e.rec.SpanByName(t, "process "+dest1)
	send2 := e.rec.SpanByName(t, "send "+dest2)
	proc2 := e.rec.SpanByName(t, "process "+dest2)
	assertRoot(t, send1)
	assertChild(t, proc1, send1)
	assertChild(t, send2, proc1)
	assertChild(t, proc2, send2)
	for _, sp := range []sdktrace.ReadOnlySpan{send1, proc1, send2, proc2} {
		assertNoLinks(t, sp)
		assertOK(t, sp)
	}
	order := []sdktrace.ReadOnlySpan{send1, proc1, send2, proc2}
	for i := 1; i < len(order); i++ {
		if !order[i-1].StartTime().Before(order[i].StartTime()) {
			t.Errorf("%q started at %v, not before %q at %v", order[i-1].Name(), order[i-1].StartTime(),
				order[i].Name(), order[i].StartTime())
		}
	}
	// Each hop's send covers the publish, so it ends before that hop's
	// process span begins only on the producer's side: hop 2's send ends
	// inside hop 1's process span.
	if send2.EndTime().After(proc1.EndTime()) {
		t.Errorf("hop 2's send ended after hop 1's process span")
	}
}

func testTelNoContext(t *testing.T, s Suite) {
	e := newTelEnv(t, s)
	dest := s.Destination(t)
	in := testkit.NewInbox[*broker.Message](s.Wait())
	e.subscribe(t, dest, collect(in))
	s.Start(t, e.b)

	plain := e.plainBroker(t)
	bare := e.message(dest, "bare")
	hostile := e.message(dest, "hostile")
	hostile.Headers.Set("traceparent", "00-zzzz-not-a-trace-context-ff")
	hostile.Headers.Set("tracestate", "=,=,,")
	hostile.Headers.Set("baggage", "%%%;;=,=")
	for _, m := range []*broker.Message{bare, hostile} {
		if err := plain.Publish(context.Background(), m); err != nil {
			t.Fatalf("publish without telemetry: %v", err)
		}
	}
	got := in.TakeN(t, 2)
	e.close(t)

	// Only the consumer is traced: one process span per message, each a
	// root, the handler ran for both.
	e.assertSpanCount(t, 2)
	op := e.consumeOp(t, dest)
	procs := e.rec.SpansByName("process " + dest)
	if len(procs) != 2 {
		t.Fatalf("want 2 process spans:\n%s", e.rec.Tree())
	}
	for i, p := range procs {
		assertSpan(t, p, "process "+dest, trace.SpanKindConsumer, e.processAttrs(op, got[i]))
		assertRoot(t, p)
		assertNoLinks(t, p)
		assertOK(t, p)
	}
	if procs[0].SpanContext().TraceID() == procs[1].SpanContext().TraceID() {
		t.Errorf("two messages without context share a trace")
	}
}

// errOrderInvalid is a handler error with a low-cardinality type of its own.
type errOrderInvalid struct{}

func (errOrderInvalid) Error() string     { return "order invalid: quantity -1" }
func (errOrderInvalid) ErrorType() string { return "order_invalid" }

func testTelHandlerError(t *testing.T, s Suite) {
	e := newTelEnv(t, s)
	dest := s.Destination(t)
	in := testkit.NewInbox[*broker.Message](s.Wait())
	handlerErr := errOrderInvalid{}
	e.subscribe(t, dest, func(_ context.Context, m *broker.Message) error {
		in.Put(m.Clone())
		if string(m.Body) == "bad" {
			return handlerErr
		}
		return nil
	}, broker.MaxAttempts(1))
	s.Start(t, e.b)

	e.publish(t, context.Background(), e.message(dest, "bad"))
	e.publish(t, context.Background(), e.message(dest, "good"))
	got := in.TakeN(t, 2)
	e.close(t)

	e.assertSpanCount(t, 4)
	op := e.consumeOp(t, dest)
	et := attribute.String(string(semconv.ErrorTypeKey), "order_invalid")
	procs := e.rec.SpansByName("process " + dest)
	if len(procs) != 2 {
		t.Fatalf("want 2 process spans:\n%s", e.rec.Tree())
	}
	for _, p := range procs {
		var m *broker.Message
		for _, g := range got {
			if testutil.IsChildOf(p, e.spanWithID(t, injected(t, g.Headers).SpanID())) {
				m = g
			}
		}
		if m == nil {
			t.Fatalf("process span %s is the child of no delivered message's send span", p.SpanContext().SpanID())
		}
		want := e.processAttrs(op, m)
		if string(m.Body) == "bad" {
			assertSpan(t, p, "process "+dest, trace.SpanKindConsumer, append(want, et))
			assertFailed(t, p, handlerErr)
		} else {
			assertSpan(t, p, "process "+dest, trace.SpanKindConsumer, want)
			assertOK(t, p)
		}
	}

	partition := func(m *broker.Message) string {
		if s.Features.Partitions {
			return strconv.Itoa(int(m.Delivery.Partition))
		}
		return ""
	}
	dur, cnt := e.sendPoint(dest)
	var okPt, badPt attribute.Set
	for _, m := range got {
		if string(m.Body) == "bad" {
			badPt = e.processPoint(op, dest, partition(m), et)
		} else {
			okPt = e.processPoint(op, dest, partition(m))
		}
	}
	e.assertMetrics(t, metricsWant{
		opDuration:   []point{{dur, 2}},
		sent:         []point{{cnt, 2}},
		procDuration: []point{{okPt, 1}, {badPt, 1}},
		consumed:     []point{{okPt, 1}, {badPt, 1}},
	})
}

func testTelPanic(t *testing.T, s Suite) {
	e := newTelEnv(t, s)
	dest := s.Destination(t)
	ran := testkit.NewInbox[*broker.Message](s.Wait())
	e.subscribe(t, dest, func(_ context.Context, m *broker.Message) error {
		ran.Put(m.Clone())
		panic("boom")
	}, broker.MaxAttempts(1))
	s.Start(t, e.b)

	e.publish(t, context.Background(), e.message(dest, "panic"))
	got := ran.Next(t)
	e.close(t)

	e.assertSpanCount(t, 2)
	op := e.consumeOp(t, dest)
	proc := e.rec.SpanByName(t, "process "+dest)
	assertSpan(t, proc, "process "+dest, trace.SpanKindConsumer,
		append(e.processAttrs(op, got), attribute.String(string(semconv.ErrorTypeKey), "panic")))
	assertFailed(t, proc, &broker.PanicError{Value: "boom"})
}

func testTelSpanInContext(t *testing.T, s Suite) {
	e := newTelEnv(t, s)
	dest := s.Destination(t)
	type seen struct {
		sc        trace.SpanContext
		recording bool
	}
	in := testkit.NewInbox[seen](s.Wait())
	e.subscribe(t, dest, func(ctx context.Context, _ *broker.Message) error {
		sp := trace.SpanFromContext(ctx)
		in.Put(seen{sp.SpanContext(), sp.IsRecording()})
		return nil
	})
	s.Start(t, e.b)
	e.publish(t, context.Background(), e.message(dest, "ctx"))
	got := in.Next(t)
	e.close(t)

	proc := e.rec.SpanByName(t, "process "+dest)
	if !got.recording || !got.sc.Equal(proc.SpanContext()) {
		t.Errorf("handler ctx holds span %s (recording %v), want the process span %s",
			got.sc.SpanID(), got.recording, proc.SpanContext().SpanID())
	}
}

func testTelBatchBatch(t *testing.T, s Suite) {
	e := newTelEnv(t, s)
	dest := s.Destination(t)
	const n = 3
	in := testkit.NewInbox[[]*broker.Message](s.Wait())
	e.subscribeBatch(t, dest, n, func(_ context.Context, msgs []*broker.Message) error {
		cp := make([]*broker.Message, len(msgs))
		for i, m := range msgs {
			cp[i] = m.Clone()
		}
		in.Put(cp)
		return nil
	})
	s.Start(t, e.b)

	// Publish under a span of the caller, so that the create and send spans
	// have a parent to be checked against.
	ctx, parent := e.rec.TracerProvider.Tracer("test").Start(context.Background(), "caller")
	sent := make([]*broker.Message, n)
	for i := range sent {
		sent[i] = e.message(dest, "b"+strconv.Itoa(i))
	}
	if err := e.b.PublishBatch(ctx, sent); err != nil {
		t.Fatalf("publish batch: %v", err)
	}
	parent.End()
	got := in.Next(t)
	e.close(t)
	if len(got) != n {
		t.Fatalf("batch of %d messages, want %d", len(got), n)
	}

	e.assertSpanCount(t, 1+n+1+1) // caller, creates, send, process
	caller := e.rec.SpanByName(t, "caller")
	creates := e.rec.SpansByName("create " + dest)
	if len(creates) != n {
		t.Fatalf("want %d create spans:\n%s", n, e.rec.Tree())
	}
	// Each sent message carries its own create span's context.
	createOf := make([]sdktrace.ReadOnlySpan, n)
	for i, m := range sent {
		createOf[i] = e.spanWithID(t, injected(t, m.Headers).SpanID())
		assertSpan(t, createOf[i], "create "+dest, trace.SpanKindProducer, e.createAttrs(m))
		assertChild(t, createOf[i], caller)
		assertNoLinks(t, createOf[i])
		assertOK(t, createOf[i])
	}
	send := e.rec.SpanByName(t, "send "+dest)
	assertSpan(t, send, "send "+dest, trace.SpanKindClient, e.batchSendAttrs(dest, n))
	assertChild(t, send, caller)
	assertOK(t, send)
	if len(send.Links()) != n {
		t.Fatalf("send span has %d links, want %d", len(send.Links()), n)
	}
	for i, l := range send.Links() {
		var want []attribute.KeyValue
		if sent[i].ID != "" {
			want = append(want, semconv.MessagingMessageID(sent[i].ID))
		}
		assertLink(t, "send", l, createOf[i].SpanContext(), want)
	}

	op := e.consumeOp(t, dest)
	proc := e.rec.SpanByName(t, "process "+dest)
	assertSpan(t, proc, "process "+dest, trace.SpanKindConsumer, e.batchProcessAttrs(op, dest, got))
	assertRoot(t, proc)
	assertOK(t, proc)
	if len(proc.Links()) != n {
		t.Fatalf("process span has %d links, want %d", len(proc.Links()), n)
	}
	for i, l := range proc.Links() {
		create := e.spanWithID(t, injected(t, got[i].Headers).SpanID())
		assertLink(t, "process", l, create.SpanContext(), e.deliveryLinkAttrs(got[i], got))
	}

	partition, _ := e.samePartition(got)
	dur, cnt := e.sendPoint(dest)
	procPt := e.processPoint(op, dest, partition)
	e.assertMetrics(t, metricsWant{
		opDuration:   []point{{dur, 1}},
		sent:         []point{{cnt, n}},
		procDuration: []point{{procPt, 1}},
		consumed:     []point{{procPt, n}},
	})
}

func testTelBatchSingle(t *testing.T, s Suite) {
	e := newTelEnv(t, s)
	dest := s.Destination(t)
	const n = 3
	type seen struct {
		msg  *broker.Message
		span trace.SpanContext
	}
	in := testkit.NewInbox[seen](s.Wait())
	e.subscribe(t, dest, func(ctx context.Context, m *broker.Message) error {
		in.Put(seen{m.Clone(), trace.SpanContextFromContext(ctx)})
		return nil
	})
	s.Start(t, e.b)

	sent := make([]*broker.Message, n)
	for i := range sent {
		sent[i] = e.message(dest, "s"+strconv.Itoa(i))
	}
	if err := e.b.PublishBatch(context.Background(), sent); err != nil {
		t.Fatalf("publish batch: %v", err)
	}
	got := in.TakeN(t, n)
	e.close(t)

	e.assertSpanCount(t, n+1+n) // creates, send, processes
	op := e.consumeOp(t, dest)
	send := e.rec.SpanByName(t, "send "+dest)
	assertSpan(t, send, "send "+dest, trace.SpanKindClient, e.batchSendAttrs(dest, n))
	assertRoot(t, send)
	if len(send.Links()) != n {
		t.Errorf("send span has %d links, want %d", len(send.Links()), n)
	}
	parents := map[trace.SpanID]bool{}
	for _, g := range got {
		create := e.spanWithID(t, injected(t, g.msg.Headers).SpanID())
		if create.Name() != "create "+dest {
			t.Errorf("message carries span %q, want its create span", create.Name())
		}
		// A create span in a batch from a ctx without a span is the root of
		// the message's own trace.
		assertRoot(t, create)
		proc := e.spanWithID(t, g.span.SpanID())
		assertSpan(t, proc, "process "+dest, trace.SpanKindConsumer, e.processAttrs(op, g.msg))
		assertChild(t, proc, create)
		assertNoLinks(t, proc)
		parents[create.SpanContext().SpanID()] = true
	}
	if len(parents) != n {
		t.Errorf("%d messages were processed under %d distinct create spans", n, len(parents))
	}

	dur, cnt := e.sendPoint(dest)
	var pts []point
	for _, g := range got {
		partition := ""
		if s.Features.Partitions {
			partition = strconv.Itoa(int(g.msg.Delivery.Partition))
		}
		pts = addPoint(pts, e.processPoint(op, dest, partition))
	}
	e.assertMetrics(t, metricsWant{
		opDuration:   []point{{dur, 1}},
		sent:         []point{{cnt, n}},
		procDuration: pts,
		consumed:     pts,
	})
}

// addPoint counts one more recording with attrs.
func addPoint(pts []point, attrs attribute.Set) []point {
	for i := range pts {
		if pts[i].attrs.Equals(&attrs) {
			pts[i].n++
			return pts
		}
	}
	return append(pts, point{attrs, 1})
}

func testTelSinglesBatch(t *testing.T, s Suite) {
	e := newTelEnv(t, s)
	dest := s.Destination(t)
	in := testkit.NewInbox[[]*broker.Message](s.Wait())
	e.subscribeBatch(t, dest, 2, func(_ context.Context, msgs []*broker.Message) error {
		cp := make([]*broker.Message, len(msgs))
		for i, m := range msgs {
			cp[i] = m.Clone()
		}
		in.Put(cp)
		return nil
	})
	s.Start(t, e.b)
	e.publish(t, context.Background(), e.message(dest, "one"))
	e.publish(t, context.Background(), e.message(dest, "two"))
	got := in.Next(t)
	e.close(t)
	if len(got) != 2 {
		t.Fatalf("batch of %d messages, want 2", len(got))
	}

	e.assertSpanCount(t, 3)
	sends := e.rec.SpansByName("send " + dest)
	if len(sends) != 2 {
		t.Fatalf("want 2 send spans:\n%s", e.rec.Tree())
	}
	op := e.consumeOp(t, dest)
	proc := e.rec.SpanByName(t, "process "+dest)
	assertSpan(t, proc, "process "+dest, trace.SpanKindConsumer, e.batchProcessAttrs(op, dest, got))
	assertRoot(t, proc)
	if len(proc.Links()) != 2 {
		t.Fatalf("process span has %d links, want 2", len(proc.Links()))
	}
	for i, l := range proc.Links() {
		send := e.spanWithID(t, injected(t, got[i].Headers).SpanID())
		if send.Name() != "send "+dest || send.SpanKind() != trace.SpanKindProducer {
			t.Errorf("message %d carries span %q (%s), want a send span", i, send.Name(), send.SpanKind())
		}
		assertLink(t, "process", l, send.SpanContext(), e.deliveryLinkAttrs(got[i], got))
	}

	partition, _ := e.samePartition(got)
	dur, cnt := e.sendPoint(dest)
	procPt := e.processPoint(op, dest, partition)
	e.assertMetrics(t, metricsWant{
		opDuration:   []point{{dur, 2}},
		sent:         []point{{cnt, 2}},
		procDuration: []point{{procPt, 1}},
		consumed:     []point{{procPt, 2}},
	})
}

func testTelLinked(t *testing.T, s Suite) {
	e := newTelEnv(t, s, middleware.WithLinkedProcessSpans())
	dest := s.Destination(t)
	in := testkit.NewInbox[*broker.Message](s.Wait())
	e.subscribe(t, dest, collect(in))
	s.Start(t, e.b)
	e.publish(t, context.Background(), e.message(dest, "linked"))
	got := in.Next(t)
	e.close(t)

	e.assertSpanCount(t, 2)
	send := e.rec.SpanByName(t, "send "+dest)
	proc := e.rec.SpanByName(t, "process "+dest)
	assertSpan(t, proc, "process "+dest, trace.SpanKindConsumer, e.processAttrs(e.consumeOp(t, dest), got))
	assertRoot(t, proc)
	if proc.SpanContext().TraceID() == send.SpanContext().TraceID() {
		t.Errorf("process span continues the producer's trace; want a new trace")
	}
	if len(proc.Links()) != 1 {
		t.Fatalf("process span has %d links, want 1", len(proc.Links()))
	}
	assertLink(t, "process", proc.Links()[0], send.SpanContext(), nil)
}

func testTelNoCreate(t *testing.T, s Suite) {
	e := newTelEnv(t, s, middleware.WithoutCreateSpans())
	dest := s.Destination(t)
	const n = 2
	type seen struct {
		msg  *broker.Message
		span trace.SpanContext
	}
	in := testkit.NewInbox[seen](s.Wait())
	e.subscribe(t, dest, func(ctx context.Context, m *broker.Message) error {
		in.Put(seen{m.Clone(), trace.SpanContextFromContext(ctx)})
		return nil
	})
	s.Start(t, e.b)
	sent := []*broker.Message{e.message(dest, "x0"), e.message(dest, "x1")}
	if err := e.b.PublishBatch(context.Background(), sent); err != nil {
		t.Fatalf("publish batch: %v", err)
	}
	got := in.TakeN(t, n)
	e.close(t)

	e.assertSpanCount(t, 1+n)
	send := e.rec.SpanByName(t, "send "+dest)
	assertSpan(t, send, "send "+dest, trace.SpanKindProducer, e.batchSendAttrs(dest, n))
	assertNoLinks(t, send)
	for _, g := range got {
		if sc := injected(t, g.msg.Headers); sc.SpanID() != send.SpanContext().SpanID() {
			t.Errorf("message carries span %s, want the send span", sc.SpanID())
		}
		assertChild(t, e.spanWithID(t, g.span.SpanID()), send)
	}
}

func testTelPublishFails(t *testing.T, s Suite) {
	e := newTelEnv(t, s)
	dest := s.Destination(t)
	// Close the transport under the open broker: the publish reaches the
	// middleware and the transport refuses it.
	ctx, cancel := context.WithTimeout(context.Background(), s.Wait())
	defer cancel()
	if err := e.b.Transport().Close(ctx); err != nil {
		t.Fatalf("close transport: %v", err)
	}
	sent := e.message(dest, "lost")
	err := e.b.Publish(ctx, sent)
	if err == nil {
		t.Fatal("publish on a closed transport succeeded")
	}

	e.assertSpanCount(t, 1)
	send := e.rec.SpanByName(t, "send "+dest)
	et := semconv.ErrorTypeKey.String(middleware.ErrorType(err))
	if et.Value.AsString() != "closed" {
		t.Errorf("error %v has no usable error.type: %v", err, et)
	}
	assertSpan(t, send, "send "+dest, trace.SpanKindProducer, append(e.sendAttrs(sent), et))
	assertFailed(t, send, err)
	dur, cnt := e.sendPoint(dest, et)
	e.assertMetrics(t, metricsWant{
		opDuration: []point{{dur, 1}},
		sent:       []point{{cnt, 1}},
	})
}

func testTelWildcard(t *testing.T, s Suite) {
	e := newTelEnv(t, s)
	dest := s.Destination(t)
	pattern := dest + ".*"
	concrete := dest + ".created"
	in := testkit.NewInbox[*broker.Message](s.Wait())
	e.subscribe(t, pattern, collect(in))
	s.Start(t, e.b)
	sent := e.message(concrete, "w")
	e.publish(t, context.Background(), sent)
	got := in.Next(t)
	e.close(t)

	e.assertSpanCount(t, 2)
	send := e.rec.SpanByName(t, "send "+concrete)
	assertSpan(t, send, "send "+concrete, trace.SpanKindProducer, e.sendAttrs(sent))
	// The span name keeps the subscription's pattern; the concrete subject
	// is an attribute, with the pattern as the template.
	proc := e.rec.SpanByName(t, "process "+pattern)
	op := e.consumeOp(t, pattern)
	assertSpan(t, proc, "process "+pattern, trace.SpanKindConsumer, e.processAttrs(op, got))
	assertChild(t, proc, send)

	dur, cnt := e.sendPoint(concrete)
	procPt := e.processPoint(op, concrete, "")
	e.assertMetrics(t, metricsWant{
		opDuration:   []point{{dur, 1}},
		sent:         []point{{cnt, 1}},
		procDuration: []point{{procPt, 1}},
		consumed:     []point{{procPt, 1}},
	})
}

func testTelSettle(t *testing.T, s Suite) {
	e := newTelEnv(t, s, middleware.WithSettleSpans())
	dest := s.Destination(t)
	in := testkit.NewInbox[*broker.Message](s.Wait())
	e.subscribe(t, dest, collect(in))
	s.Start(t, e.b)
	e.publish(t, context.Background(), e.message(dest, "settle"))
	got := in.Next(t)
	e.close(t)

	ackName := e.info.AckOperation
	if ackName == "" {
		ackName = "ack"
	}
	e.assertSpanCount(t, 3)
	op := e.consumeOp(t, dest)
	proc := e.rec.SpanByName(t, "process "+dest)
	settle := e.rec.SpanByName(t, ackName+" "+dest)
	want := e.common(ackName, semconv.MessagingOperationTypeSettle)
	want = append(want, semconv.MessagingDestinationName(dest))
	want = e.clientID(subscriber(want, op))
	if got.ID != "" {
		want = append(want, semconv.MessagingMessageID(got.ID))
	}
	partition := ""
	if s.Features.Partitions {
		partition = strconv.Itoa(int(got.Delivery.Partition))
		want = append(want, semconv.MessagingDestinationPartitionID(partition),
			semconv.MessagingKafkaOffset(int(got.Delivery.Offset)))
	}
	if e.kafka() && got.Key != nil {
		want = append(want, semconv.MessagingKafkaMessageKey(string(got.Key)))
	}
	assertSpan(t, settle, ackName+" "+dest, trace.SpanKindClient, want)
	assertChild(t, settle, proc)
	assertOK(t, settle)

	dur, cnt := e.sendPoint(dest)
	settleKVs := []attribute.KeyValue{
		semconv.MessagingSystemKey.String(e.info.System),
		semconv.MessagingOperationName(ackName),
		semconv.MessagingOperationTypeSettle,
		semconv.MessagingDestinationName(dest),
	}
	if partition != "" {
		settleKVs = append(settleKVs, semconv.MessagingDestinationPartitionID(partition))
	}
	settleKVs = subscriber(e.server(settleKVs), op)
	procPt := e.processPoint(op, dest, partition)
	e.assertMetrics(t, metricsWant{
		opDuration:   []point{{dur, 1}, {attribute.NewSet(settleKVs...), 1}},
		sent:         []point{{cnt, 1}},
		procDuration: []point{{procPt, 1}},
		consumed:     []point{{procPt, 1}},
	})
}

func testTelBodySize(t *testing.T, s Suite) {
	e := newTelEnv(t, s, middleware.WithMessageBodySize())
	dest := s.Destination(t)
	in := testkit.NewInbox[*broker.Message](s.Wait())
	e.subscribe(t, dest, collect(in))
	s.Start(t, e.b)
	sent := e.message(dest, "twelve bytes")
	e.publish(t, context.Background(), sent)
	got := in.Next(t)
	e.close(t)

	size := semconv.MessagingMessageBodySize(len("twelve bytes"))
	send := e.rec.SpanByName(t, "send "+dest)
	assertSpan(t, send, "send "+dest, trace.SpanKindProducer, append(e.sendAttrs(sent), size))
	proc := e.rec.SpanByName(t, "process "+dest)
	assertSpan(t, proc, "process "+dest, trace.SpanKindConsumer, append(e.processAttrs(e.consumeOp(t, dest), got), size))
}
