package broker_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/codec"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
)

type Refund struct {
	OrderID string  `json:"order_id"`
	Amount  float64 `json:"amount"`
}

// kind selects the messages whose "kind" header is k.
func kind(k string) broker.SubscribeOption {
	return broker.Filter(func(m *broker.Message) bool { return m.Headers.Get("kind") == k })
}

// Typed handlers with filters share one subscription: each message is
// decoded into the type of the handler whose filter takes it (a header, the
// content type), the default takes the rest, and each message is handled
// once, under one process span. Separate subscriptions without a group
// would each have got every message.
func TestFilterPicksTheHandlerAndThePayloadType(t *testing.T) {
	h := testutil.NewHarness(t, testutil.WithSyncDelivery())
	b := h.Broker()
	var tk events
	must(t, broker.Handle(b, "payments", func(_ context.Context, o Order) error {
		tk.add("order " + o.ID)
		return nil
	}, kind("order")))
	must(t, broker.Handle(b, "payments", func(_ context.Context, s string) error {
		tk.add("text " + s)
		return nil
	}, broker.Filter(func(m *broker.Message) bool {
		return m.Headers.Get(broker.HeaderContentType) == codec.Text.ContentType()
	}), broker.Codec(codec.Text)))
	must(t, b.Subscribe("payments", func(_ context.Context, m *broker.Message) error {
		tk.add("default " + string(m.Body))
		return nil
	}))
	must(t, broker.Handle(b, "payments", func(_ context.Context, r Refund) error {
		tk.add("refund " + r.OrderID)
		return nil
	}, kind("refund")))

	ctx := t.Context()
	publish := func(k, ct, body string) {
		t.Helper()
		m := &broker.Message{Destination: "payments", Body: []byte(body)}
		if k != "" {
			m.Headers.Set("kind", k)
		}
		if ct != "" {
			m.Headers.Set(broker.HeaderContentType, ct)
		}
		must(t, b.Publish(ctx, m))
	}
	publish("order", "application/json", `{"id":"A-1","total":5}`)
	publish("refund", "application/json", `{"order_id":"A-1","amount":5}`)
	publish("", codec.Text.ContentType(), "hello")
	publish("other", "", "raw")
	// The first registered filter that matches wins: this refund is text.
	publish("refund", codec.Text.ContentType(), "R-9")

	want := []string{"order A-1", "refund A-1", "text hello", "default raw", "text R-9"}
	if got := tk.list(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("handled %q, want %q", got, want)
	}
	if n := len(h.Recorder().SpansByName("process payments")); n != len(want) {
		t.Errorf("%d process spans, want one per message (%d)", n, len(want))
	}
	var filtered int
	for _, e := range b.Endpoints() {
		if e.Destination == "payments" && e.Filtered {
			filtered++
		}
	}
	if filtered != 4 {
		t.Errorf("%d filtered endpoints of payments, want 4", filtered)
	}
	h.AssertNoDeadLetters(t)
}

// A message no handler takes is dead-lettered with the reason when the
// subscription has a DeadLetter, counted as a dead letter with error.type
// "unmatched"; its process span records the failure.
func TestFilterUnmatchedIsDeadLettered(t *testing.T) {
	h := testutil.NewHarness(t, testutil.WithSyncDelivery())
	b := h.Broker()
	var tk events
	must(t, broker.Handle(b, "payments", func(_ context.Context, o Order) error {
		tk.add("order " + o.ID)
		return nil
	}, kind("order"), broker.DeadLetter("dlq.payments")))
	must(t, broker.Handle(b, "payments", func(_ context.Context, r Refund) error {
		tk.add("refund " + r.OrderID)
		return nil
	}, kind("refund"), broker.DeadLetter("dlq.payments")))

	m := &broker.Message{Destination: "payments", Body: []byte(`{}`)}
	m.Headers.Set("kind", "chargeback")
	must(t, b.Publish(t.Context(), m))

	if got := tk.list(); len(got) != 0 {
		t.Errorf("handlers took %q", got)
	}
	dead := h.DeadLetters()
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	if e := dead[0].Headers.Get(broker.HeaderDeadLetterError); !strings.Contains(e, "no handler") {
		t.Errorf("dead letter error %q, want the reason", e)
	}
	if n := sumWith(t, h, "tracebus.consumer.dead_lettered.messages", attribute.String("error.type", "unmatched")); n != 1 {
		t.Errorf("dead-lettered unmatched messages = %d, want 1", n)
	}
	span := h.Recorder().SpanByName(t, "process payments")
	if span.Status().Code != codes.Error {
		t.Errorf("process span status %v, want Error", span.Status())
	}
	// Delivered once: unmatched is permanent, not retried.
	if n := len(h.Calls("payments")); n != 1 {
		t.Errorf("%d deliveries, want 1", n)
	}
}

// Without a DeadLetter, a message no handler takes is dropped (terminated,
// not acknowledged as handled) with a warning that says why, and counted as
// a drop with error.type "unmatched".
func TestFilterUnmatchedIsDroppedWithAWarning(t *testing.T) {
	var logs testutil.LogBuffer
	h := testutil.NewHarness(t, testutil.WithSyncDelivery(),
		testutil.WithBrokerOptions(broker.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil)))))
	b := h.Broker()
	must(t, b.Subscribe("payments", noop, kind("order")))

	m := &broker.Message{Destination: "payments", ID: "m-1"}
	must(t, b.Publish(t.Context(), m))

	var warned bool
	for _, r := range logs.Records(t) {
		if r["msg"] == "tracebus: no handler takes the message, dropping it" && r["level"] == "WARN" {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning about the unmatched message in:\n%s", logs.String())
	}
	if n := sumWith(t, h, "tracebus.consumer.dropped.messages", attribute.String("error.type", "unmatched")); n != 1 {
		t.Errorf("dropped unmatched messages = %d, want 1", n)
	}
	calls := h.Calls("payments")
	if len(calls) != 1 || !errors.Is(calls[0].Err, broker.ErrPermanent) {
		t.Errorf("calls %+v, want one failing permanently", calls)
	}
}

// A handler with a filter registered while the broker runs joins the
// running subscription.
func TestFilterJoinsARunningSubscription(t *testing.T) {
	h := testutil.NewHarness(t, testutil.WithSyncDelivery())
	b := h.Broker()
	var tk events
	must(t, b.Subscribe("payments", func(_ context.Context, m *broker.Message) error {
		tk.add("default")
		return nil
	}))
	must(t, b.Publish(t.Context(), &broker.Message{Destination: "payments"}))
	must(t, b.Subscribe("payments", func(_ context.Context, m *broker.Message) error {
		tk.add("refund")
		return nil
	}, kind("refund")))
	m := &broker.Message{Destination: "payments"}
	m.Headers.Set("kind", "refund")
	must(t, b.Publish(t.Context(), m))
	must(t, b.Publish(t.Context(), &broker.Message{Destination: "payments"}))

	if got, want := strings.Join(tk.list(), ","), "default,refund,default"; got != want {
		t.Errorf("handled %s, want %s", got, want)
	}
}

// What cannot make one subscription fails with ErrInvalid, saying why.
func TestFilterRegistrationErrors(t *testing.T) {
	b := broker.New(testutil.Memory(t))
	batch := func(context.Context, []*broker.Message) error { return nil }
	must(t, b.Subscribe("a", noop, kind("x"), broker.Group("g")))
	must(t, b.Subscribe("a", noop, broker.Group("g"))) // the default
	must(t, b.Subscribe("two", noop))
	must(t, b.Subscribe("two", noop)) // two unfiltered subscriptions, as ever

	cases := []struct {
		name, want string
		err        error
	}{
		{"nil filter", "nil filter", b.Subscribe("b", noop, broker.Filter(nil))},
		{"batch", "settled as a whole", b.SubscribeBatch("b", batch, kind("x"))},
		{"second default", "default handler", b.Subscribe("a", noop, broker.Group("g"))},
		{"concurrency", "Concurrency 4, before 1", b.Subscribe("a", noop, kind("y"), broker.Group("g"), broker.Concurrency(4))},
		{"attempts", "MaxAttempts 5, before 3", b.Subscribe("a", noop, kind("y"), broker.Group("g"), broker.MaxAttempts(5))},
		{"dead letter", `DeadLetter "dlq", before ""`, b.Subscribe("a", noop, kind("y"), broker.Group("g"), broker.DeadLetter("dlq"))},
		{"ack", "AckFirst", b.Subscribe("a", noop, kind("y"), broker.Group("g"), broker.AckFirst())},
		{"backoff", "RetryBackoff", b.Subscribe("a", noop, kind("y"), broker.Group("g"), broker.RetryBackoff(broker.ConstantBackoff(time.Second)))},
		{"middleware", "Use", b.Subscribe("a", noop, kind("y"), broker.Group("g"), broker.Use(middleware.NewTelemetry()))},
		{"ambiguous", "2 subscriptions", b.Subscribe("two", noop, kind("y"))},
	}
	for _, c := range cases {
		if !errors.Is(c.err, broker.ErrInvalid) || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrInvalid saying %q", c.name, c.err, c.want)
		}
	}
	// Another group is another subscription.
	must(t, b.Subscribe("a", noop, kind("y"), broker.Group("other"), broker.Concurrency(4)))
}

// sumWith adds up the points of the counter name that carry kv.
func sumWith(t *testing.T, h *testutil.Harness, name string, kv attribute.KeyValue) int64 {
	t.Helper()
	m, ok := h.Recorder().Metric(t, name)
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	var n int64
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		if v, ok := dp.Attributes.Value(kv.Key); ok && v == kv.Value {
			n += dp.Value
		}
	}
	return n
}

// A request that no handler of a filtered subscription takes is answered
// at once with a *ReplyError of type "unmatched", not left to time out.
func TestFilterUnmatchedRequestGetsAnErrorReply(t *testing.T) {
	h := testutil.NewHarness(t)
	b := h.Broker()
	must(t, broker.HandleResult(b, "quotes", func(_ context.Context, o Order) (Invoice, error) {
		return Invoice{OrderID: o.ID}, nil
	}, kind("order")))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	req := &broker.Message{Destination: "quotes", Body: []byte(`{"id":"A-1","total":1}`)}
	req.Headers.Set("kind", "refund")
	_, err := b.Request(ctx, req)
	re, ok := errors.AsType[*broker.ReplyError](err)
	if !ok || re.Type != "unmatched" {
		t.Fatalf("request nobody takes: %v, want a *ReplyError of type unmatched", err)
	}
}
