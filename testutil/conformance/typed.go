package conformance

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/codec"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/testutil"
)

// TestTyped is the suite of the typed layer (codecs, Handle, HandleBatch,
// HandleResult, Publisher, ack control) over a transport: what it promises
// on memory must hold on NATS and Kafka too.
func TestTyped(t *testing.T, s Suite) {
	tests := []struct {
		name string
		need bool
		run  func(*testing.T, Suite)
	}{
		{"JSONRoundTrip", true, testTypedJSON},
		{"ProtobufRoundTrip", true, testTypedProtobuf},
		{"ContentTypeHeaderWins", true, testTypedContentType},
		{"DecodeErrorDeadLettered", true, func(t *testing.T, s Suite) { testTypedRejected(t, s, false) }},
		{"ValidationErrorDeadLettered", true, func(t *testing.T, s Suite) { testTypedRejected(t, s, true) }},
		{"ResultChained", true, testTypedChain},
		{"AckFirstDoesNotRedeliver", true, testTypedAckFirst},
		{"ManualNakWithDelay", !s.Features.Synchronous, testTypedManualNak},
		{"Batch", s.Features.Batch, testTypedBatch},
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

func testTypedJSON(t *testing.T, s Suite) {
	dest := s.Destination(t)
	b := s.Broker(t)
	type got struct {
		order testkit.Order
		ct    string
		key   string
	}
	in := testkit.NewInbox[got](s.Wait())
	must(t, broker.Handle(b, dest, func(ctx context.Context, o testkit.Order) error {
		m := broker.MessageFromContext(ctx)
		in.Put(got{o, m.Headers.Get(broker.HeaderContentType), string(m.Key)})
		return nil
	}, s.Options()...))
	s.Start(t, b)
	orders := broker.Must(broker.NewPublisher[testkit.Order](b, dest, broker.KeyFunc(func(o testkit.Order) string { return o.ID })))
	must(t, orders.Publish(context.Background(), testkit.Order{ID: "o-1", Quantity: 2}))
	g := in.Next(t)
	if g.order != (testkit.Order{ID: "o-1", Quantity: 2}) {
		t.Errorf("got %+v", g.order)
	}
	if g.ct != "application/json" {
		t.Errorf("content-type %q, want application/json", g.ct)
	}
	if s.Features.Keys && g.key != "o-1" {
		t.Errorf("key %q, want o-1", g.key)
	}
}

func testTypedProtobuf(t *testing.T, s Suite) {
	dest := s.Destination(t)
	b := s.Broker(t)
	in := testkit.NewInbox[*structpb.Struct](s.Wait())
	must(t, broker.Handle(b, dest, func(_ context.Context, v *structpb.Struct) error {
		in.Put(v)
		return nil
	}, s.Options(broker.Codec(codec.Protobuf))...))
	s.Start(t, b)
	want, err := structpb.NewStruct(map[string]any{"id": "o-2", "quantity": 3.0})
	must(t, err)
	must(t, broker.Must(broker.NewPublisher[*structpb.Struct](b, dest, broker.Codec(codec.Protobuf))).Publish(context.Background(), want))
	if got := in.Next(t); !proto.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// A subscription decoding JSON by default reads a message labelled
// text/plain with the text codec: the header wins over the subscription's
// codec.
func testTypedContentType(t *testing.T, s Suite) {
	dest := s.Destination(t)
	b := s.Broker(t)
	in := testkit.NewInbox[string](s.Wait())
	must(t, broker.Handle(b, dest, func(_ context.Context, v string) error {
		in.Put(v)
		return nil
	}, s.Options()...))
	s.Start(t, b)
	ctx := context.Background()
	must(t, broker.Must(broker.NewPublisher[string](b, dest, broker.Codec(codec.Text))).Publish(ctx, "plain words"))
	must(t, broker.Must(broker.NewPublisher[string](b, dest)).Publish(ctx, "json words"))
	// No header at all: the subscription's codec (JSON).
	must(t, b.Publish(ctx, &broker.Message{Destination: dest, Body: []byte(`"bare json"`)}))
	got := in.TakeN(t, 3)
	slices.Sort(got)
	if want := []string{"bare json", "json words", "plain words"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// A body that does not decode, or an order that does not validate, is
// dead-lettered once with the reason, never retried, and its process span
// fails with error.type decode or validation.
func testTypedRejected(t *testing.T, s Suite, validation bool) {
	e := newTelEnv(t, s)
	dest := s.Destination(t)
	dlq := dest + "-dlq"
	if s.Prepare != nil {
		s.Prepare(t, dlq)
	}
	var calls sync.Map
	must(t, broker.Handle(e.b, dest, func(_ context.Context, o testkit.Order) error {
		calls.Store(o.ID, true)
		return nil
	}, s.Options(broker.DeadLetter(dlq), broker.MaxAttempts(3))...))
	dead := testkit.NewInbox[*broker.Message](s.Wait())
	must(t, e.b.Subscribe(dlq, collect(dead), s.Options()...))
	s.Start(t, e.b)

	ctx := context.Background()
	body, wantType := `{"id": "o-1", "quantity": "many"`, "decode"
	if validation {
		body, wantType = `{"id": "o-1", "quantity": 0}`, "validation"
	}
	must(t, e.b.Publish(ctx, &broker.Message{Destination: dest, Body: []byte(body)}))
	must(t, broker.Must(broker.NewPublisher[testkit.Order](e.b, dest)).Publish(ctx, testkit.Order{ID: "o-2", Quantity: 1}))
	d := dead.Next(t)
	testutil.Eventually(t, s.Wait(), func() bool { _, ok := calls.Load("o-2"); return ok }, "the good order was not handled")
	e.close(t)

	if string(d.Body) != body {
		t.Errorf("dead letter body %q, want %q", d.Body, body)
	}
	if got := d.Headers.Get(broker.HeaderDeadLetterAttempts); got != "1" {
		t.Errorf("dead-lettered after %s attempts, want 1 (never retried)", got)
	}
	if reason := d.Headers.Get(broker.HeaderDeadLetterError); !strings.Contains(reason, wantType) && !strings.Contains(reason, "invalid") {
		t.Errorf("dead letter reason %q does not say what failed", reason)
	}
	if _, ok := calls.Load("o-1"); ok {
		t.Error("the handler got the rejected order")
	}
	if dead.Len() != 0 {
		t.Errorf("%d more dead letters", dead.Len())
	}
	procs := e.rec.SpansByName("process " + dest)
	if len(procs) != 2 {
		t.Fatalf("want 2 process spans (one per message, no retry):\n%s", e.rec.Tree())
	}
	failed := 0
	for _, p := range procs {
		if p.Status().Code != codes.Error {
			continue
		}
		failed++
		if !hasAttr(p.Attributes(), attribute.String(string(semconv.ErrorTypeKey), wantType)) {
			t.Errorf("failed process span lacks error.type=%s: %v", wantType, p.Attributes())
		}
	}
	if failed != 1 {
		t.Errorf("%d failed process spans, want 1", failed)
	}
}

func hasAttr(kvs []attribute.KeyValue, want attribute.KeyValue) bool {
	for _, kv := range kvs {
		if kv == want {
			return true
		}
	}
	return false
}

// HandleResult sends the handler's result onward with its ctx: the second
// hop's send is a child of the first hop's process span, and a nil result
// sends nothing.
func testTypedChain(t *testing.T, s Suite) {
	e := newTelEnv(t, s)
	dest1, dest2 := s.Destination(t), s.Destination(t)+"-2"
	if s.Prepare != nil {
		s.Prepare(t, dest2)
	}
	invoices := broker.Must(broker.NewPublisher[*testkit.Invoice](e.b, dest2))
	must(t, broker.HandleResult(e.b, dest1, func(_ context.Context, o testkit.Order) (*testkit.Invoice, error) {
		if o.ID == "free" {
			return nil, nil
		}
		return &testkit.Invoice{OrderID: o.ID, Amount: 10 * o.Quantity}, nil
	}, resultOptions(s.Options(), broker.PublishTo(invoices))...))
	in := testkit.NewInbox[testkit.Invoice](s.Wait())
	must(t, broker.Handle(e.b, dest2, func(_ context.Context, inv testkit.Invoice) error {
		in.Put(inv)
		return nil
	}, s.Options()...))
	s.Start(t, e.b)

	// One key: one Kafka partition, so the nil result is handled before
	// the invoice arrives.
	orders := broker.Must(broker.NewPublisher[testkit.Order](e.b, dest1, broker.KeyFunc(func(testkit.Order) string { return "customer-1" })))
	must(t, orders.Publish(context.Background(), testkit.Order{ID: "free", Quantity: 1}))
	must(t, orders.Publish(context.Background(), testkit.Order{ID: "o-7", Quantity: 3}))
	if got := in.Next(t); got != (testkit.Invoice{OrderID: "o-7", Amount: 30}) {
		t.Errorf("got %+v", got)
	}
	e.close(t)
	if in.Len() != 0 {
		t.Errorf("the nil result was published")
	}

	e.assertSpanCount(t, 6) // 2 × send and process of the orders, send and process of the invoice
	send2 := e.rec.SpanByName(t, "send "+dest2)
	proc2 := e.rec.SpanByName(t, "process "+dest2)
	proc1 := parentOf(e, send2)
	if proc1 == nil || proc1.Name() != "process "+dest1 {
		t.Fatalf("the invoice's send is not a child of the order's process span:\n%s", e.rec.Tree())
	}
	assertChild(t, proc2, send2)
	if send1 := parentOf(e, proc1); send1 == nil || send1.Name() != "send "+dest1 {
		t.Fatalf("the order's process span is not a child of its send:\n%s", e.rec.Tree())
	}
}

// parentOf returns the recorded span that is s's parent, or nil.
func parentOf(e *telEnv, s sdktrace.ReadOnlySpan) sdktrace.ReadOnlySpan {
	for _, p := range e.rec.Spans() {
		if p.SpanContext().SpanID() == s.Parent().SpanID() && p.SpanContext().TraceID() == s.Parent().TraceID() {
			return p
		}
	}
	return nil
}

// AckFirst settles before the handler runs: a failing handler's message is
// acknowledged once and never redelivered.
func testTypedAckFirst(t *testing.T, s Suite) {
	dest := s.Destination(t)
	var mu sync.Mutex
	var log []string
	settles := driver.MiddlewareFuncs{Settle: func(next driver.SettleFunc) driver.SettleFunc {
		return func(ctx context.Context, op driver.Operation, msgs []*broker.Message, st driver.Settlement) error {
			mu.Lock()
			log = append(log, st.Action.String())
			mu.Unlock()
			return next(ctx, op, msgs, st)
		}
	}}
	b := s.Broker(t, broker.WithMiddleware(settles), broker.WithLogger(discard()))
	in := testkit.NewInbox[string](s.Wait())
	must(t, broker.Handle(b, dest, func(_ context.Context, o testkit.Order) error {
		mu.Lock()
		log = append(log, "handle "+o.ID)
		mu.Unlock()
		in.Put(o.ID)
		return errors.New("fails after the ack")
	}, s.Options(broker.AckFirst(), broker.RetryBackoff(broker.ConstantBackoff(time.Millisecond)))...))
	s.Start(t, b)
	must(t, broker.Must(broker.NewPublisher[testkit.Order](b, dest)).Publish(context.Background(), testkit.Order{ID: "o-1", Quantity: 1}))
	in.Next(t)
	closeBroker(t, s, b)
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(log, ",") != "ack,handle o-1" {
		t.Errorf("settlement log %v, want [ack handle o-1]", log)
	}
}

// ManualAck: the handler naks its first delivery with a delay and acks the
// redelivery, which comes no sooner than the delay.
func testTypedManualNak(t *testing.T, s Suite) {
	dest := s.Destination(t)
	b := s.Broker(t)
	const delay = 150 * time.Millisecond
	type got struct {
		count int
		at    time.Time
	}
	in := testkit.NewInbox[got](s.Wait())
	must(t, broker.Handle(b, dest, func(ctx context.Context, o testkit.Order) error {
		m := broker.MessageFromContext(ctx)
		in.Put(got{m.Delivery.DeliveryCount, time.Now()})
		st := broker.SettlerFromContext(ctx)
		if m.Delivery.DeliveryCount == 1 {
			return st.Nak(ctx, delay)
		}
		// Transports that cannot report progress say so.
		if err := st.InProgress(ctx); err != nil && !errors.Is(err, errors.ErrUnsupported) {
			return err
		}
		return st.Ack(ctx)
	}, s.Options(broker.ManualAck())...))
	s.Start(t, b)
	must(t, broker.Must(broker.NewPublisher[testkit.Order](b, dest)).Publish(context.Background(), testkit.Order{ID: "o-1", Quantity: 1}))
	first, second := in.Next(t), in.Next(t)
	if first.count != 1 || second.count != 2 {
		t.Fatalf("delivery counts %d, %d; want 1, 2", first.count, second.count)
	}
	if gap := second.at.Sub(first.at); gap < delay-10*time.Millisecond {
		t.Errorf("redelivered after %v, before the %v the handler asked for", gap, delay)
	}
	closeBroker(t, s, b)
	if in.Len() != 0 {
		t.Errorf("%d deliveries after the ack", in.Len())
	}
}

// HandleBatch decodes every message; one that does not decode is
// dead-lettered alone and the handler gets the others, aligned with
// BatchFromContext.
func testTypedBatch(t *testing.T, s Suite) {
	dest := s.Destination(t)
	dlq := dest + "-dlq"
	if s.Prepare != nil {
		s.Prepare(t, dlq)
	}
	b := s.Broker(t, broker.WithLogger(discard()))
	in := testkit.NewInbox[testkit.Order](s.Wait())
	var mismatch sync.Once
	must(t, broker.HandleBatch(b, dest, func(ctx context.Context, orders []testkit.Order) error {
		msgs := broker.BatchFromContext(ctx)
		for i, o := range orders {
			if len(msgs) != len(orders) || !strings.Contains(string(msgs[i].Body), o.ID) {
				mismatch.Do(func() { t.Errorf("BatchFromContext not aligned with the values") })
			}
			in.Put(o)
		}
		return nil
	}, s.Options(broker.Batch(10, 50*time.Millisecond), broker.DeadLetter(dlq))...))
	dead := testkit.NewInbox[*broker.Message](s.Wait())
	must(t, b.Subscribe(dlq, collect(dead), s.Options()...))
	s.Start(t, b)
	ctx := context.Background()
	orders := broker.Must(broker.NewPublisher[testkit.Order](b, dest))
	must(t, orders.PublishBatch(ctx, []testkit.Order{{ID: "o-1", Quantity: 1}, {ID: "o-2", Quantity: 2}}))
	must(t, b.Publish(ctx, &broker.Message{Destination: dest, Body: []byte("not json")}))
	must(t, orders.Publish(ctx, testkit.Order{ID: "o-3", Quantity: 3}))
	got := in.TakeN(t, 3)
	ids := make([]string, len(got))
	for i, o := range got {
		ids[i] = o.ID
	}
	slices.Sort(ids) // Kafka spreads keyless messages over partitions
	if strings.Join(ids, ",") != "o-1,o-2,o-3" {
		t.Errorf("handled %v, want o-1, o-2 and o-3", ids)
	}
	if d := dead.Next(t); string(d.Body) != "not json" {
		t.Errorf("dead letter %q", d.Body)
	}
	closeBroker(t, s, b)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func closeBroker(t *testing.T, s Suite, b *broker.Broker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.Wait())
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatalf("close broker: %v", err)
	}
}
