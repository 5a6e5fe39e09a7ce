package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/broker"
)

// TestPull is the suite of pulling on demand (broker.Puller) over a
// transport that implements driver.Puller: Get takes one message and
// leaves the rest on the server, returns at ctx's end on an empty
// destination, hands a failed message back to a later Get, dead-letters
// after the last attempt or at once when it does not decode, lets the
// handler settle with ManualAck, and All stops at a break with the rest
// still there. The telemetry case checks the receive span (CLIENT, child of
// the caller's span, linked to the send span), the process span and the
// receive metrics.
//
// Every case runs with a consumer group (and durable name) when the
// transport declares Groups, and without one.
func TestPull(t *testing.T, s Suite) {
	tests := []struct {
		name string
		run  func(*testing.T, Suite, []broker.SubscribeOption)
	}{
		{"GetTakesOne", testPullGetOne},
		{"EmptyDeadline", testPullEmpty},
		{"NakRedelivers", testPullNak},
		{"DeadLetter", testPullDeadLetter},
		{"DecodeErrorDeadLetters", testPullDecode},
		{"ManualAck", testPullManual},
		{"AllBreak", testPullAll},
		{"Telemetry", testPullTelemetry},
	}
	modes := []struct {
		name string
		need bool
		opts []broker.SubscribeOption
	}{
		{"Group", s.Features.Groups, []broker.SubscribeOption{broker.Group("pullers"), broker.Name("pullers")}},
		{"NoGroup", true, nil},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			if !m.need {
				t.Skip("transport does not declare groups")
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, s, m.opts) })
			}
		})
	}
}

// pullJob is the payload of the pull suite.
type pullJob struct {
	N int `json:"n"`
}

// newPuller registers a Puller of dest on b and starts b, which opens the
// consumer: what is published afterwards is there to take on every
// transport, core NATS included.
func newPuller(t *testing.T, s Suite, b *broker.Broker, dest string, opts []broker.SubscribeOption, extra ...broker.SubscribeOption) *broker.Puller[pullJob] {
	t.Helper()
	p, err := broker.NewPuller[pullJob](b, dest, s.Options(append(append([]broker.SubscribeOption(nil), opts...), extra...)...)...)
	if err != nil {
		t.Fatalf("new puller of %s: %v", dest, err)
	}
	return p
}

// publishJobs publishes jobs first..last to dest, with one key where the
// transport has keys, so that they keep their order on one partition.
func publishJobs(t *testing.T, b *broker.Broker, dest string, first, last int) {
	t.Helper()
	for n := first; n <= last; n++ {
		body, err := json.Marshal(pullJob{N: n})
		if err != nil {
			t.Fatal(err)
		}
		msg := &broker.Message{Destination: dest, Key: []byte("pull"), Body: body}
		msg.Headers.Set(broker.HeaderContentType, "application/json")
		if err := b.Publish(context.Background(), msg); err != nil {
			t.Fatalf("publish %d: %v", n, err)
		}
	}
}

// get takes one job within the suite's wait and returns it with the
// message's delivery count.
func get(t *testing.T, s Suite, p *broker.Puller[pullJob]) (pullJob, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.Wait())
	defer cancel()
	var got pullJob
	count := 0
	if err := p.Get(ctx, func(ctx context.Context, v pullJob) error {
		got, count = v, broker.MessageFromContext(ctx).Delivery.DeliveryCount
		return nil
	}); err != nil {
		t.Fatalf("get: %v", err)
	}
	return got, count
}

// assertEmpty checks that a Get finds nothing before a short deadline. A
// message that is there arrives well before it, so a loaded machine makes
// this check weaker, never flaky.
func assertEmpty(t *testing.T, p *broker.Puller[pullJob]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := p.Get(ctx, func(_ context.Context, v pullJob) error {
		t.Errorf("got job %d, want none", v.N)
		return nil
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("get on an empty destination: %v, want one matching context.DeadlineExceeded", err)
	}
}

func testPullGetOne(t *testing.T, s Suite, opts []broker.SubscribeOption) {
	dest := s.Destination(t)
	b := s.Broker(t)
	p := newPuller(t, s, b, dest, opts)
	s.Start(t, b)
	publishJobs(t, b, dest, 1, 3)

	if got, count := get(t, s, p); got.N != 1 || count != 1 {
		t.Fatalf("first get: job %d (delivery %d), want 1 (delivery 1)", got.N, count)
	}
	if got, _ := get(t, s, p); got.N != 2 {
		t.Fatalf("second get: job %d, want 2", got.N)
	}
	if len(opts) == 0 || !s.Features.Persistent {
		if got, _ := get(t, s, p); got.N != 3 {
			t.Fatalf("third get: job %d, want 3", got.N)
		}
		assertEmpty(t, p)
		return
	}
	// The third is still on the server: another broker of the same
	// group takes it once this one has gone.
	ctx, cancel := context.WithTimeout(context.Background(), s.Wait())
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	b2 := s.Broker(t)
	p2 := newPuller(t, s, b2, dest, opts)
	if got, _ := get(t, s, p2); got.N != 3 {
		t.Fatalf("get after a restart: job %d, want 3 (the one not taken)", got.N)
	}
}

func testPullEmpty(t *testing.T, s Suite, opts []broker.SubscribeOption) {
	dest := s.Destination(t)
	b := s.Broker(t)
	p := newPuller(t, s, b, dest, opts)
	// Not started: the first Get opens the consumer.
	assertEmpty(t, p)
}

func testPullNak(t *testing.T, s Suite, opts []broker.SubscribeOption) {
	dest := s.Destination(t)
	b := s.Broker(t)
	p := newPuller(t, s, b, dest, opts, broker.MaxAttempts(3), broker.RetryBackoff(broker.ConstantBackoff(10*time.Millisecond)))
	s.Start(t, b)
	publishJobs(t, b, dest, 1, 1)

	boom := errors.New("not now")
	ctx, cancel := context.WithTimeout(context.Background(), s.Wait())
	defer cancel()
	err := p.Get(ctx, func(context.Context, pullJob) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("get: %v, want the handler's error", err)
	}
	got, count := get(t, s, p)
	if got.N != 1 || count != 2 {
		t.Fatalf("after a nak: job %d delivery %d, want job 1 delivery 2", got.N, count)
	}
	assertEmpty(t, p)
}

// deadLetters returns a Puller of a new dead-letter destination.
func deadLetters(t *testing.T, s Suite, b *broker.Broker) (string, *broker.Puller[pullJob]) {
	dlq := s.Destination(t)
	p, err := broker.NewPuller[pullJob](b, dlq, s.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	return dlq, p
}

func testPullDeadLetter(t *testing.T, s Suite, opts []broker.SubscribeOption) {
	dest := s.Destination(t)
	b := s.Broker(t)
	dlq, dead := deadLetters(t, s, b)
	p := newPuller(t, s, b, dest, opts, broker.MaxAttempts(2), broker.DeadLetter(dlq),
		broker.RetryBackoff(broker.ConstantBackoff(10*time.Millisecond)))
	s.Start(t, b)
	publishJobs(t, b, dest, 1, 1)

	calls := 0
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), s.Wait())
		err := p.Get(ctx, func(context.Context, pullJob) error {
			calls++
			return errors.New("cannot")
		})
		cancel()
		if err == nil {
			t.Fatal("get: nil error, want the handler's")
		}
	}
	if calls != 2 {
		t.Fatalf("handler ran %d times, want 2", calls)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.Wait())
	defer cancel()
	if err := dead.Get(ctx, func(ctx context.Context, v pullJob) error {
		m := broker.MessageFromContext(ctx)
		if v.N != 1 || m.Headers.Get(broker.HeaderDeadLetterAttempts) != "2" || m.Headers.Get(broker.HeaderDeadLetterOrigin) != dest {
			t.Errorf("dead letter job %d, headers %v; want job 1 after 2 attempts from %s", v.N, m.Headers, dest)
		}
		return nil
	}); err != nil {
		t.Fatalf("get dead letter: %v", err)
	}
	assertEmpty(t, p)
}

func testPullDecode(t *testing.T, s Suite, opts []broker.SubscribeOption) {
	dest := s.Destination(t)
	b := s.Broker(t)
	dlq, dead := deadLetters(t, s, b)
	p := newPuller(t, s, b, dest, opts, broker.DeadLetter(dlq))
	s.Start(t, b)
	bad := &broker.Message{Destination: dest, Key: []byte("pull"), Body: []byte("{not json")}
	bad.Headers.Set(broker.HeaderContentType, "application/json")
	if err := b.Publish(context.Background(), bad); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.Wait())
	defer cancel()
	err := p.Get(ctx, func(context.Context, pullJob) error {
		t.Error("handler called with a message that does not decode")
		return nil
	})
	if !errors.Is(err, broker.ErrDecode) {
		t.Fatalf("get: %v, want one matching broker.ErrDecode", err)
	}
	var raw string
	if err := dead.Get(ctx, func(ctx context.Context, _ pullJob) error { return nil }); err != nil {
		// The dead letter does not decode either: its bytes are what
		// was published; it is dead-lettered again, nowhere.
		raw = err.Error()
	}
	if raw == "" {
		t.Error("dead letter decoded, want the original bytes")
	}
	assertEmpty(t, p)
}

func testPullManual(t *testing.T, s Suite, opts []broker.SubscribeOption) {
	dest := s.Destination(t)
	b := s.Broker(t)
	p := newPuller(t, s, b, dest, opts, broker.ManualAck(), broker.MaxAttempts(5))
	s.Start(t, b)
	publishJobs(t, b, dest, 1, 1)

	ctx, cancel := context.WithTimeout(context.Background(), s.Wait())
	defer cancel()
	// The handler asks for the message again itself, then returns nil:
	// with ManualAck, nil settles nothing.
	if err := p.Get(ctx, func(ctx context.Context, _ pullJob) error {
		return broker.SettlerFromContext(ctx).Nak(ctx, 0)
	}); err != nil {
		t.Fatalf("first get: %v", err)
	}
	if err := p.Get(ctx, func(ctx context.Context, v pullJob) error {
		if n := broker.MessageFromContext(ctx).Delivery.DeliveryCount; v.N != 1 || n != 2 {
			t.Errorf("job %d delivery %d, want job 1 delivery 2", v.N, n)
		}
		return broker.SettlerFromContext(ctx).Ack(ctx)
	}); err != nil {
		t.Fatalf("second get: %v", err)
	}
	assertEmpty(t, p)
}

func testPullAll(t *testing.T, s Suite, opts []broker.SubscribeOption) {
	dest := s.Destination(t)
	b := s.Broker(t)
	p := newPuller(t, s, b, dest, opts)
	s.Start(t, b)
	publishJobs(t, b, dest, 1, 3)

	ctx, cancel := context.WithTimeout(context.Background(), s.Wait())
	defer cancel()
	var got []int
	for v, err := range p.All(ctx) {
		if err != nil {
			t.Fatalf("all: %v", err)
		}
		got = append(got, v.N)
		if len(got) == 2 {
			break
		}
	}
	if fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("all took %v, want [1 2]", got)
	}
	// Both were acknowledged, the third is still there.
	if v, count := get(t, s, p); v.N != 3 || count != 1 {
		t.Fatalf("get after the loop: job %d delivery %d, want job 3 delivery 1", v.N, count)
	}
	assertEmpty(t, p)

	// The loop ends without an error when ctx does.
	short, stop := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer stop()
	for v, err := range p.All(short) {
		t.Errorf("all on an empty destination yielded %v, %v", v, err)
	}
}

func testPullTelemetry(t *testing.T, s Suite, opts []broker.SubscribeOption) {
	e := newTelEnv(t, s)
	dest := s.Destination(t)
	p := newPuller(t, s, e.b, dest, opts)
	s.Start(t, e.b)
	sent := e.message(dest, "pulled")
	sent.Body = []byte(`{"n":7}`) // no content type: the codec's default, JSON
	e.publish(t, context.Background(), sent)

	// The caller's own span: the receive span's parent.
	ctx, caller := e.rec.TracerProvider.Tracer("caller").Start(context.Background(), "drain")
	ctx, cancel := context.WithTimeout(ctx, s.Wait())
	defer cancel()
	var got *broker.Message
	var inHandler trace.SpanContext
	if err := p.Get(ctx, func(ctx context.Context, _ pullJob) error {
		got = broker.MessageFromContext(ctx).Clone()
		inHandler = trace.SpanContextFromContext(ctx)
		return nil
	}); err != nil {
		t.Fatalf("get: %v", err)
	}
	caller.End()
	e.close(t)

	name := e.info.ReceiveOperation
	if name == "" {
		name = "receive"
	}
	send := e.rec.SpanByName(t, "send "+dest)
	recv := e.rec.SpanByName(t, name+" "+dest)
	proc := e.rec.SpanByName(t, "process "+dest)
	drain := e.rec.SpanByName(t, "drain")
	op := e.consumeOp(t, dest)

	// receive: CLIENT, child of the caller, linked to the send span.
	want := e.common(name, semconv.MessagingOperationTypeReceive)
	want = append(want, semconv.MessagingDestinationName(dest))
	want = e.clientID(subscriber(want, op))
	if got.ID != "" {
		want = append(want, semconv.MessagingMessageID(got.ID))
	}
	if s.Features.Partitions {
		want = append(want,
			semconv.MessagingDestinationPartitionID(strconv.Itoa(int(got.Delivery.Partition))),
			semconv.MessagingKafkaOffset(int(got.Delivery.Offset)))
	}
	if e.kafka() && got.Key != nil {
		want = append(want, semconv.MessagingKafkaMessageKey(string(got.Key)))
	}
	assertSpan(t, recv, name+" "+dest, trace.SpanKindClient, appendAttempt(want, got))
	assertChild(t, recv, drain)
	assertOK(t, recv)
	if links := recv.Links(); len(links) != 1 {
		t.Errorf("receive span: %d links, want 1 (to the send span)", len(links))
	} else {
		assertLink(t, "receive span", links[0], send.SpanContext(), nil)
	}

	// process: as for every single message, a child of the send span
	// (the creation context) linked to the span it ran under, the
	// receive span.
	assertSpan(t, proc, "process "+dest, trace.SpanKindConsumer, e.processAttrs(op, got))
	assertChild(t, proc, send)
	if links := proc.Links(); len(links) != 1 {
		t.Errorf("process span: %d links, want 1 (to the receive span)", len(links))
	} else {
		assertLink(t, "process span", links[0], recv.SpanContext(), nil)
	}
	if inHandler.SpanID() != proc.SpanContext().SpanID() {
		t.Errorf("handler ran under span %s, want the process span %s", inHandler.SpanID(), proc.SpanContext().SpanID())
	}
	if !recv.StartTime().Before(proc.StartTime()) && !recv.StartTime().Equal(proc.StartTime()) {
		t.Errorf("receive span starts after the process span")
	}

	// Metrics: the receive's duration (type receive) and the consumed
	// message, counted once, under the receive's operation name.
	partition := ""
	if s.Features.Partitions {
		partition = strconv.Itoa(int(got.Delivery.Partition))
	}
	recvPoint := func(extra ...attribute.KeyValue) attribute.Set {
		kvs := []attribute.KeyValue{
			semconv.MessagingSystemKey.String(e.info.System),
			semconv.MessagingOperationName(name),
			semconv.MessagingDestinationName(dest),
		}
		if partition != "" {
			kvs = append(kvs, semconv.MessagingDestinationPartitionID(partition))
		}
		kvs = subscriber(e.server(kvs), op)
		return attribute.NewSet(append(kvs, extra...)...)
	}
	sendDur, sentSet := e.sendPoint(dest)
	e.assertMetrics(t, metricsWant{
		opDuration: []point{
			{attrs: sendDur, n: 1},
			{attrs: recvPoint(semconv.MessagingOperationTypeReceive), n: 1},
		},
		procDuration: []point{{attrs: e.processPoint(op, dest, partition), n: 1}},
		sent:         []point{{attrs: sentSet, n: 1}},
		consumed:     []point{{attrs: recvPoint(), n: 1}},
	})
}
