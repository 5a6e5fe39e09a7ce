package broker_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
)

// hostileHeaders are headers a user may put in an Envelope that name the
// library's own: each must lose to the library's value or be dropped.
func hostileHeaders() broker.Headers {
	var h broker.Headers
	h.Set("x-custom", "kept")
	h.Set("Content-Type", "text/plain")
	h.Set("X-Tracebus-Correlation-Id", "header-corr")
	h.Set("x-tracebus-reply-to", "_INBOX.stolen")
	h.Set("x-tracebus-reply-error", "fake")
	h.Set("x-tracebus-reply-id", "stolen")
	h.Set("traceparent", "00-11111111111111111111111111111111-2222222222222222-01")
	return h
}

// A HandleResult handler returning an Envelope sets the key, id,
// correlation id and headers of that one result: onward, through a
// Publisher of the plain type, and as the reply, where the requester's
// correlation id wins. The library's own headers win over the user's.
func TestEnvelopeResultOnwardAndReply(t *testing.T) {
	rec := testutil.NewRecorder(t)
	tel := middleware.NewTelemetry(middleware.WithTracerProvider(rec.TracerProvider), middleware.WithMeterProvider(rec.MeterProvider),
		middleware.WithPropagators(propagation.TraceContext{}))
	b := broker.New(testutil.Memory(t), broker.WithMiddleware(tel), broker.WithLogger(discardLogger()))
	onward := testkit.NewInbox[*broker.Message](30 * time.Second)
	must(t, b.Subscribe("invoices", func(_ context.Context, m *broker.Message) error { onward.Put(m); return nil }))
	invoices := broker.Must(broker.NewPublisher[invoice](b, "invoices"))
	seen := testkit.NewInbox[broker.Envelope[order]](30 * time.Second)
	must(t, broker.HandleResult(b, "orders", func(_ context.Context, in broker.Envelope[order]) (broker.Envelope[invoice], error) {
		seen.Put(in)
		return broker.Envelope[invoice]{
			Value:         invoice{Order: in.Value.ID},
			Key:           "key-" + in.Value.ID,
			ID:            "inv-" + in.Value.ID,
			CorrelationID: "result-corr",
			Headers:       hostileHeaders(),
		}, nil
	}, broker.PublishTo(invoices)))
	ctx := requestCtx(t)
	must(t, b.Start(ctx))
	defer b.Close(context.Background())

	r := broker.Must(broker.NewRequester[broker.Envelope[order], broker.Envelope[invoice]](b, "orders"))
	req := broker.Envelope[order]{Value: order{ID: "7"}, CorrelationID: "caller-corr", ID: "req-7"}
	req.Headers.Set("x-tenant", "acme")
	reply, err := r.Request(ctx, req)
	must(t, err)

	in := seen.Next(t)
	if in.Value.ID != "7" || in.CorrelationID != "caller-corr" || in.ID != "req-7" || in.Headers.Get("x-tenant") != "acme" {
		t.Errorf("handler got %+v, want order 7 with correlation id caller-corr, id req-7 and x-tenant", in)
	}
	if reply.Value.Order != "7" || reply.CorrelationID != "caller-corr" || reply.Key != "key-7" || reply.ID != "inv-7" ||
		reply.Headers.Get("x-custom") != "kept" {
		t.Errorf("reply %+v, want invoice 7, correlation id caller-corr, key key-7, id inv-7, x-custom", reply)
	}
	checkLibraryHeaders(t, "reply", reply.Headers)

	m := onward.Next(t)
	if string(m.Key) != "key-7" || m.ID != "inv-7" || m.Headers.Get("x-custom") != "kept" {
		t.Errorf("onward message key %q id %q x-custom %q, want key-7, inv-7, kept", m.Key, m.ID, m.Headers.Get("x-custom"))
	}
	if got := m.Headers.Get(driver.HeaderCorrelationID); got != "result-corr" {
		t.Errorf("onward correlation id %q, want the envelope's result-corr", got)
	}
	if m.ReplyTo != "" {
		t.Errorf("onward message has reply address %q", m.ReplyTo)
	}
	checkLibraryHeaders(t, "onward", m.Headers)
	for _, ep := range b.Endpoints() {
		if ep.Destination == "orders" && ep.Kind == driver.EndpointSubscriber &&
			(ep.Payload != reflect.TypeFor[order]() || ep.Reply != reflect.TypeFor[invoice]()) {
			t.Errorf("HandleResult endpoint payload %v reply %v, want order and invoice", ep.Payload, ep.Reply)
		}
	}
	send := rec.SpanByName(t, "send invoices")
	if got, want := m.Headers.Get("traceparent"), "00-"+send.SpanContext().TraceID().String()+"-"+send.SpanContext().SpanID().String()+"-01"; got != want {
		t.Errorf("onward traceparent %q, want the send span's %q", got, want)
	}

	// Either side alone: a plain request gets the broker's correlation id
	// back in an Envelope reply.
	half := broker.Must(broker.NewRequester[order, broker.Envelope[invoice]](b, "orders"))
	hreply, err := half.Request(ctx, order{ID: "8"})
	must(t, err)
	if in := seen.Next(t); hreply.Value.Order != "8" || hreply.CorrelationID == "" || hreply.CorrelationID != in.CorrelationID {
		t.Errorf("reply %+v to a plain request, handler saw correlation id %q: want the broker's id on both", hreply, in.CorrelationID)
	}
	onward.Next(t)
}

// checkLibraryHeaders fails when a header the user set in an Envelope took
// the place of the library's own.
func checkLibraryHeaders(t *testing.T, what string, h broker.Headers) {
	t.Helper()
	if got := h.Values(broker.HeaderContentType); len(got) != 1 || got[0] != "application/json" {
		t.Errorf("%s content-type %q, want the codec's alone", what, got)
	}
	for _, k := range []string{"x-tracebus-reply-to", "x-tracebus-reply-error", "x-tracebus-reply-id"} {
		if v, ok := h.Lookup(k); ok && v != "" && (v == "_INBOX.stolen" || v == "fake" || v == "stolen") {
			t.Errorf("%s carries the user's %s: %q", what, k, v)
		}
	}
	if got := h.Values("traceparent"); len(got) != 1 || got[0] == "00-11111111111111111111111111111111-2222222222222222-01" {
		t.Errorf("%s traceparent %q, want one written by the telemetry", what, got)
	}
	if got := h.Values(driver.HeaderCorrelationID); len(got) != 1 || got[0] == "header-corr" {
		t.Errorf("%s correlation id headers %q, want one, not the user's header", what, got)
	}
}

// A Publisher[Envelope[T]] sends T with each envelope's metadata, its
// Key winning over the KeyFunc; Handle[Envelope[T]] reads all of it back;
// the endpoints show T, not the envelope.
func TestEnvelopePublishAndHandle(t *testing.T) {
	b := broker.New(testutil.Memory(t), broker.WithLogger(discardLogger()))
	got := testkit.NewInbox[broker.Envelope[order]](30 * time.Second)
	must(t, broker.Handle(b, "orders", func(_ context.Context, e broker.Envelope[order]) error { got.Put(e); return nil }))
	pub := broker.Must(broker.NewPublisher[broker.Envelope[order]](b, "orders",
		broker.KeyFunc(func(e broker.Envelope[order]) string { return "derived-" + e.Value.ID })))
	ctx := requestCtx(t)
	must(t, b.Start(ctx))
	defer b.Close(context.Background())

	e := broker.Envelope[order]{Value: order{ID: "1"}, Key: "k1", ID: "m1", CorrelationID: "c1"}
	e.Headers.Set("x-a", "b")
	must(t, pub.Publish(ctx, e))
	must(t, pub.Publish(ctx, broker.Envelope[order]{Value: order{ID: "2"}}))
	must(t, pub.PublishBatch(ctx, []broker.Envelope[order]{{Value: order{ID: "3"}, ID: "m3"}}))

	first, second, third := got.Next(t), got.Next(t), got.Next(t)
	if first.Value.ID != "1" || first.Key != "k1" || first.ID != "m1" || first.CorrelationID != "c1" || first.Headers.Get("x-a") != "b" {
		t.Errorf("first %+v", first)
	}
	if first.Headers.Get(broker.HeaderContentType) != "application/json" {
		t.Errorf("incoming Headers lack the library's: %v", first.Headers)
	}
	if second.Value.ID != "2" || second.Key != "derived-2" || second.CorrelationID != "" {
		t.Errorf("second %+v, want the KeyFunc's key and no correlation id", second)
	}
	if third.Value.ID != "3" || third.ID != "m3" {
		t.Errorf("third %+v", third)
	}
	for _, ep := range b.Endpoints() {
		if ep.Payload != reflect.TypeFor[order]() {
			t.Errorf("endpoint %s %v shows payload %v, want order", ep.Destination, ep.Kind, ep.Payload)
		}
	}
}

type checked struct {
	N int `json:"n"`
}

func (c checked) Validate() error {
	if c.N < 0 {
		return errors.New("negative")
	}
	return nil
}

// An Envelope's Value is decoded and validated as the handler's type
// would be; Decode fills an Envelope too.
func TestEnvelopeDecodeAndValidate(t *testing.T) {
	m := &broker.Message{Body: []byte(`{"n":-1}`), Key: []byte("k"), ID: "i"}
	m.Headers.Set(driver.HeaderCorrelationID, "c")
	e, err := broker.Decode[broker.Envelope[checked]](m)
	must(t, err)
	if e.Value.N != -1 || e.Key != "k" || e.ID != "i" || e.CorrelationID != "c" {
		t.Errorf("Decode gave %+v", e)
	}
	if _, err := broker.Decode[broker.Envelope[checked]](&broker.Message{Body: []byte("{")}); !errors.Is(err, broker.ErrDecode) {
		t.Errorf("Decode of a broken body: %v, want ErrDecode", err)
	}

	b := broker.New(testutil.Memory(t), broker.WithLogger(discardLogger()))
	handled := make(chan int, 2)
	must(t, broker.HandleBatch(b, "nums", func(_ context.Context, es []broker.Envelope[checked]) error {
		for _, e := range es {
			handled <- e.Value.N
		}
		return nil
	}, broker.DeadLetter("nums.dead")))
	dead := testkit.NewInbox[string](30 * time.Second)
	must(t, b.Subscribe("nums.dead", func(_ context.Context, m *broker.Message) error { dead.Put(string(m.Body)); return nil }))
	ctx := requestCtx(t)
	must(t, b.Start(ctx))
	defer b.Close(context.Background())
	pub := broker.Must(broker.NewPublisher[broker.Envelope[checked]](b, "nums"))
	must(t, pub.PublishBatch(ctx, []broker.Envelope[checked]{{Value: checked{N: -1}}, {Value: checked{N: 2}}}))
	if got := dead.Next(t); got != `{"n":-1}` {
		t.Errorf("dead letter %s, want the invalid value", got)
	}
	if got := <-handled; got != 2 {
		t.Errorf("handled %d, want 2", got)
	}
}

// A nil Value in a result Envelope sends nothing, as a nil result does; a
// Publisher[Envelope[T]] takes a handler's plain T.
func TestEnvelopeNilResultAndPlainToEnvelopePublisher(t *testing.T) {
	b := broker.New(testutil.Memory(t), broker.WithLogger(discardLogger()))
	out := testkit.NewInbox[string](30 * time.Second)
	must(t, b.Subscribe("out", func(_ context.Context, m *broker.Message) error { out.Put(string(m.Body)); return nil }))
	pub := broker.Must(broker.NewPublisher[broker.Envelope[*invoice]](b, "out"))
	must(t, broker.HandleResult(b, "in", func(_ context.Context, o order) (broker.Envelope[*invoice], error) {
		if o.ID == "" {
			return broker.Envelope[*invoice]{Key: "ignored"}, nil
		}
		return broker.Envelope[*invoice]{Value: &invoice{Order: o.ID}}, nil
	}, broker.PublishTo(pub)))
	plain := broker.Must(broker.NewPublisher[broker.Envelope[invoice]](b, "out"))
	must(t, broker.HandleResult(b, "plain", func(_ context.Context, o order) (invoice, error) {
		return invoice{Order: "plain-" + o.ID}, nil
	}, broker.PublishTo(plain)))
	ctx := requestCtx(t)
	must(t, b.Start(ctx))
	defer b.Close(context.Background())
	in := broker.Must(broker.NewPublisher[order](b, "in"))
	must(t, in.Publish(ctx, order{}))
	must(t, in.Publish(ctx, order{ID: "9"}))
	if got := out.Next(t); got != `{"order":"9"}` {
		t.Errorf("first result %s, want order 9 (the nil one sends nothing)", got)
	}
	must(t, broker.Must(broker.NewPublisher[order](b, "plain")).Publish(ctx, order{ID: "1"}))
	if got := out.Next(t); got != `{"order":"plain-1"}` {
		t.Errorf("plain result %s", got)
	}
}

// Request keeps a correlation id the caller set: the replier sees it, the
// reply returns it, and the request's own matching id stays out of the
// caller's way.
func TestRequestKeepsCallerCorrelationID(t *testing.T) {
	b := memoryBroker()
	must(t, b.Subscribe("echo", func(ctx context.Context, m *broker.Message) error {
		reply := &broker.Message{Body: []byte(m.Headers.Get(driver.HeaderCorrelationID))}
		reply.Headers.Set(driver.HeaderCorrelationID, "replier-tried")
		return b.Reply(ctx, m, reply)
	}))
	must(t, b.Start(context.Background()))
	defer b.Close(context.Background())
	req := &broker.Message{Destination: "echo"}
	req.Headers.Set(driver.HeaderCorrelationID, "mine")
	reply, err := b.Request(requestCtx(t), req)
	must(t, err)
	if string(reply.Body) != "mine" || reply.Headers.Get(driver.HeaderCorrelationID) != "mine" {
		t.Errorf("replier saw %q, reply carries %q; want mine, mine", reply.Body, reply.Headers.Get(driver.HeaderCorrelationID))
	}
	if got := req.Headers.Get(driver.HeaderCorrelationID); got != "mine" {
		t.Errorf("request's correlation id became %q", got)
	}
	// Without one, the broker's own id is the correlation id, as before.
	reply, err = b.Request(requestCtx(t), &broker.Message{Destination: "echo"})
	must(t, err)
	if id := reply.Headers.Get(driver.HeaderCorrelationID); id == "" || id != string(reply.Body) {
		t.Errorf("reply correlation id %q, replier saw %q", id, reply.Body)
	}
}

// Two requests in flight with the same caller correlation id each get
// their own reply, whatever order the replier answers in.
func TestRequestSameCallerIDConcurrent(t *testing.T) {
	b := memoryBroker()
	testSameCallerID(t, b)
}

func testSameCallerID(t *testing.T, b *broker.Broker) {
	t.Helper()
	var mu sync.Mutex
	var held []*broker.Message
	both := make(chan struct{})
	must(t, b.Subscribe("same", func(ctx context.Context, m *broker.Message) error {
		mu.Lock()
		held = append(held, m)
		if len(held) == 2 {
			close(both)
		}
		mu.Unlock()
		return nil
	}, broker.Concurrency(2)))
	must(t, b.Start(context.Background()))
	defer b.Close(context.Background())
	type result struct {
		body, reply, corr string
		err               error
	}
	results := make(chan result, 2)
	for _, body := range []string{"a", "b"} {
		go func() {
			req := &broker.Message{Destination: "same", Body: []byte(body)}
			req.Headers.Set(driver.HeaderCorrelationID, "shared")
			reply, err := b.Request(requestCtx(t), req)
			if err != nil {
				results <- result{body: body, err: err}
				return
			}
			results <- result{body, string(reply.Body), reply.Headers.Get(driver.HeaderCorrelationID), nil}
		}()
	}
	select {
	case <-both:
	case <-time.After(30 * time.Second):
		t.Fatal("the two requests did not both arrive")
	}
	// Answer the later request first.
	for i := len(held) - 1; i >= 0; i-- {
		m := held[i]
		must(t, b.Reply(context.Background(), m, &broker.Message{Body: append([]byte("re: "), m.Body...)}))
	}
	for range 2 {
		r := <-results
		if r.err != nil || r.reply != "re: "+r.body || r.corr != "shared" {
			t.Errorf("request %q: reply %q, correlation id %q, err %v", r.body, r.reply, r.corr, r.err)
		}
	}
}
