package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/testutil"
)

// TestRequestReply is the suite of request/reply over a transport: byte
// and typed round trips, timeouts, no responders, error replies, many
// requests in flight, late replies, and correlation ids the caller owns
// (carried to the replier and back, never used to match a reply). The span tree of a request is
// part of TestTelemetry.
func TestRequestReply(t *testing.T, s Suite) {
	tests := []struct {
		name string
		need bool
		run  func(*testing.T, Suite)
	}{
		{"BytesRoundTrip", true, testReqBytes},
		{"TypedRoundTrip", true, testReqTyped},
		{"Timeout", true, testReqTimeout},
		{"NoResponders", true, testReqNoResponders},
		{"ErrorReplies", true, testReqErrors},
		{"Concurrent", true, testReqConcurrent},
		{"LateReplyDropped", true, testReqLate},
		{"CallerCorrelationID", true, testReqCallerID},
		{"TypedEnvelopes", true, testReqEnvelopes},
		{"SameCallerIDConcurrent", true, testReqSameCallerID},
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

// reqOptions are the options of a replier subscribed to dest: a group and
// durable name of its own (Kafka needs a group, JetStream a durable name),
// so that a second replier of a test does not rebalance the first one's
// Kafka group.
func reqOptions(s Suite, dest string, extra ...broker.SubscribeOption) []broker.SubscribeOption {
	name := "replier-" + dest
	return s.Options(append([]broker.SubscribeOption{broker.Group(name), broker.Name(name)}, extra...)...)
}

// resultOptions is opts for HandleResult, followed by more.
func resultOptions(opts []broker.SubscribeOption, more ...broker.ResultOption) []broker.ResultOption {
	out := make([]broker.ResultOption, 0, len(opts)+len(more))
	for _, o := range opts {
		out = append(out, o)
	}
	return append(out, more...)
}

// quiet is a broker option that discards the logs of handlers failing on
// purpose.
var quiet = broker.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))

// echo subscribes a byte-level replier to dest on b that answers "re: " and
// the request's body.
func echo(t *testing.T, s Suite, b *broker.Broker, dest string, extra ...broker.SubscribeOption) {
	t.Helper()
	err := b.Subscribe(dest, func(ctx context.Context, m *broker.Message) error {
		reply := &broker.Message{Body: append([]byte("re: "), m.Body...)}
		reply.Headers.Set("x-echo", m.Headers.Get("x-in"))
		return b.Reply(ctx, m, reply)
	}, reqOptions(s, dest, extra...)...)
	if err != nil {
		t.Fatalf("subscribe %s: %v", dest, err)
	}
}

func (s Suite) requestCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.Wait())
}

func assertStats(t *testing.T, b *broker.Broker, want broker.RequestStats) {
	t.Helper()
	if got := b.RequestStats(); got != want {
		t.Errorf("request stats %+v, want %+v", got, want)
	}
}

func testReqBytes(t *testing.T, s Suite) {
	dest := s.Destination(t)
	server, client := s.Broker(t), s.Broker(t)
	echo(t, s, server, dest)
	s.Start(t, server)

	ctx, cancel := s.requestCtx()
	defer cancel()
	req := &broker.Message{Destination: dest, Body: []byte("ping")}
	req.Headers.Set("x-in", "42")
	reply, err := client.Request(ctx, req)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if string(reply.Body) != "re: ping" || reply.Headers.Get("x-echo") != "42" {
		t.Errorf("reply %q with x-echo %q, want %q with %q", reply.Body, reply.Headers.Get("x-echo"), "re: ping", "42")
	}
	id := req.Headers.Get(driver.HeaderCorrelationID)
	if id == "" || reply.Headers.Get(driver.HeaderCorrelationID) != id {
		t.Errorf("reply correlation id %q, request's %q", reply.Headers.Get(driver.HeaderCorrelationID), id)
	}
	if req.ReplyTo == "" || reply.Destination != req.ReplyTo {
		t.Errorf("reply arrived at %q, the request's reply address is %q", reply.Destination, req.ReplyTo)
	}
	assertStats(t, client, broker.RequestStats{})
}

func testReqTyped(t *testing.T, s Suite) {
	dest := s.Destination(t)
	server, client := s.Broker(t), s.Broker(t)
	err := broker.HandleResult(server, dest, func(_ context.Context, o testkit.Order) (testkit.Invoice, error) {
		return testkit.Invoice{OrderID: o.ID, Amount: 10 * o.Quantity}, nil
	}, resultOptions(reqOptions(s, dest))...)
	if err != nil {
		t.Fatal(err)
	}
	s.Start(t, server)

	r := broker.Must(broker.NewRequester[testkit.Order, testkit.Invoice](client, dest))
	ctx, cancel := s.requestCtx()
	defer cancel()
	inv, err := r.Request(ctx, testkit.Order{ID: "o-1", Quantity: 3})
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if want := (testkit.Invoice{OrderID: "o-1", Amount: 30}); inv != want {
		t.Errorf("reply %+v, want %+v", inv, want)
	}
	eps := client.Endpoints()
	if len(eps) != 1 || eps[0].Kind != driver.EndpointPublisher || eps[0].Destination != dest ||
		eps[0].Payload != reflect.TypeFor[testkit.Order]() || eps[0].Reply != reflect.TypeFor[testkit.Invoice]() {
		t.Errorf("requester endpoints %+v, want one publisher of Order to %s replied with Invoice", eps, dest)
	}
}

func testReqTimeout(t *testing.T, s Suite) {
	dest := s.Destination(t)
	server, client := s.Broker(t), s.Broker(t)
	got := testkit.NewInbox[string](s.Wait())
	err := server.Subscribe(dest, func(ctx context.Context, m *broker.Message) error {
		got.Put(string(m.Body))
		if string(m.Body) == "silent" {
			return nil // and never answer
		}
		return server.Reply(ctx, m, &broker.Message{Body: m.Body})
	}, reqOptions(s, dest)...)
	if err != nil {
		t.Fatal(err)
	}
	s.Start(t, server)

	// A first request warms the way up (a Kafka group join, the inbox),
	// so that the short deadline of the second is spent waiting for a
	// reply; whether or not it reaches the replier in time, it times out.
	ctx, cancel := s.requestCtx()
	defer cancel()
	if _, err := client.Request(ctx, &broker.Message{Destination: dest, Body: []byte("warm")}); err != nil {
		t.Fatalf("first request: %v", err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelShort()
	_, err = client.Request(short, &broker.Message{Destination: dest, Body: []byte("silent")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("request error %v, want one wrapping context.DeadlineExceeded", err)
	}
	if got := got.TakeN(t, 2); got[1] != "silent" {
		t.Errorf("replier got %q", got)
	}
	assertStats(t, client, broker.RequestStats{})

	if _, err := client.Request(context.Background(), &broker.Message{Destination: dest}); !errors.Is(err, broker.ErrInvalid) {
		t.Errorf("request without a deadline: %v, want ErrNoDeadline", err)
	}
}

// testReqNoResponders: where the system knows that nobody listens, a
// request fails at once with ErrNoResponders; elsewhere (Kafka, JetStream)
// it times out.
func testReqNoResponders(t *testing.T, s Suite) {
	dest := s.Destination(t)
	client := s.Broker(t)
	if !s.Features.NoResponders {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if _, err := client.Request(ctx, &broker.Message{Destination: dest}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("request nobody consumes: %v, want one wrapping context.DeadlineExceeded", err)
		}
		assertStats(t, client, broker.RequestStats{})
		return
	}
	ctx, cancel := s.requestCtx()
	defer cancel()
	_, err := client.Request(ctx, &broker.Message{Destination: dest, Body: []byte("hello?")})
	if !errors.Is(err, broker.ErrNoResponders) {
		t.Fatalf("request error %v, want one wrapping ErrNoResponders", err)
	}
	if ctx.Err() != nil {
		t.Errorf("no responders reported only after the deadline")
	}
	assertStats(t, client, broker.RequestStats{})
}

// errCardDeclined is a handler error with a type of its own.
type errCardDeclined struct{}

func (errCardDeclined) Error() string     { return "card 4111-1111 declined by issuer db-7" }
func (errCardDeclined) ErrorType() string { return "card_declined" }

func testReqErrors(t *testing.T, s Suite) {
	// Every destination exists before the brokers start: a Kafka client
	// learns about topics created later only at its next metadata refresh.
	dest, exposed, raw := s.Destination(t), s.Destination(t), s.Destination(t)
	server, client := s.Broker(t, quiet), s.Broker(t)
	handler := func(_ context.Context, o testkit.Order) (testkit.Invoice, error) {
		switch o.ID {
		case "internal":
			return testkit.Invoice{}, broker.Permanent(errors.New("connect to 10.0.0.7:5432: password authentication failed"))
		case "typed":
			return testkit.Invoice{}, broker.Permanent(errCardDeclined{})
		case "answer":
			return testkit.Invoice{}, &broker.ReplyError{Type: "not_found", Message: "no order answer"}
		case "retried":
			return testkit.Invoice{}, errCardDeclined{} // not permanent: the last attempt answers
		}
		return testkit.Invoice{OrderID: o.ID}, nil
	}
	for d, opts := range map[string][]broker.ResultOption{
		dest:    resultOptions(reqOptions(s, dest, broker.MaxAttempts(2), broker.RetryBackoff(broker.ConstantBackoff(time.Millisecond)))),
		exposed: resultOptions(reqOptions(s, exposed, broker.MaxAttempts(1)), broker.ExposeErrors()),
	} {
		if err := broker.HandleResult(server, d, handler, opts...); err != nil {
			t.Fatal(err)
		}
	}
	s.Start(t, server)

	for _, tc := range []struct {
		name, dest, id string
		want           broker.ReplyError
	}{
		{"Internal", dest, "internal", broker.ReplyError{Type: "_OTHER"}},
		{"Typed", dest, "typed", broker.ReplyError{Type: "card_declined"}},
		{"LastAttempt", dest, "retried", broker.ReplyError{Type: "card_declined"}},
		{"Answer", dest, "answer", broker.ReplyError{Type: "not_found", Message: "no order answer"}},
		{"Invalid", dest, "", broker.ReplyError{Type: "validation"}},
		{"Exposed", exposed, "typed", broker.ReplyError{Type: "card_declined", Message: errCardDeclined{}.Error()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := s.requestCtx()
			defer cancel()
			_, err := broker.Must(broker.NewRequester[testkit.Order, testkit.Invoice](client, tc.dest)).Request(ctx, testkit.Order{ID: tc.id, Quantity: 1})
			re, ok := errors.AsType[*broker.ReplyError](err)
			if !ok || !errors.Is(err, broker.ErrRemote) {
				t.Fatalf("request error %v, want a *ReplyError matching ErrRemote", err)
			}
			if *re != tc.want {
				t.Errorf("error reply %+v, want %+v", *re, tc.want)
			}
		})
	}

	// A request that does not decode is answered too; so is a byte-level
	// handler's ReplyError.
	ctx, cancel := s.requestCtx()
	defer cancel()
	_, err := client.Request(ctx, &broker.Message{Destination: dest, Body: []byte("{not json")})
	if re, ok := errors.AsType[*broker.ReplyError](err); !ok || re.Type != "decode" || re.Message != "" {
		t.Errorf("undecodable request: %v, want an error reply of type decode without text", err)
	}
	err = server.Subscribe(raw, func(ctx context.Context, m *broker.Message) error {
		return server.ReplyError(ctx, m, errCardDeclined{})
	}, reqOptions(s, raw)...)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Request(ctx, &broker.Message{Destination: raw})
	if re, ok := errors.AsType[*broker.ReplyError](err); !ok || re.Type != "card_declined" || re.Message != "" {
		t.Errorf("byte-level error reply: %v, want type card_declined without text", err)
	}
	assertStats(t, client, broker.RequestStats{})
}

func testReqConcurrent(t *testing.T, s Suite) {
	dest := s.Destination(t)
	server, client := s.Broker(t), s.Broker(t)
	echo(t, s, server, dest, broker.Concurrency(4))
	s.Start(t, server)

	const n = 100
	ctx, cancel := s.requestCtx()
	defer cancel()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := fmt.Sprintf("request-%d", i)
			reply, err := client.Request(ctx, &broker.Message{Destination: dest, Body: []byte(body)})
			switch {
			case err != nil:
				errs[i] = err
			case string(reply.Body) != "re: "+body:
				errs[i] = fmt.Errorf("got %q", reply.Body)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
	assertStats(t, client, broker.RequestStats{})
}

func testReqLate(t *testing.T, s Suite) {
	dest, echoed := s.Destination(t), s.Destination(t)
	server, client := s.Broker(t), s.Broker(t)
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) }) // before the brokers close
	err := server.Subscribe(dest, func(ctx context.Context, m *broker.Message) error {
		arrived <- struct{}{}
		<-release
		return server.Reply(ctx, m, &broker.Message{Body: []byte("too late")})
	}, reqOptions(s, dest)...)
	if err != nil {
		t.Fatal(err)
	}
	s.Start(t, server)

	// The request gives up once the replier has it, so the reply is late
	// by construction.
	ctx, cancel := context.WithTimeout(context.Background(), s.Wait())
	defer cancel()
	go func() {
		select {
		case <-arrived:
			cancel()
		case <-ctx.Done():
		}
	}()
	if _, err := client.Request(ctx, &broker.Message{Destination: dest, Body: []byte("q")}); !errors.Is(err, context.Canceled) {
		t.Fatalf("request error %v, want one wrapping context.Canceled", err)
	}
	once.Do(func() { close(release) })
	testutil.Eventually(t, s.Wait(), func() bool { return client.RequestStats().LateReplies == 1 }, "the late reply was not counted")
	assertStats(t, client, broker.RequestStats{LateReplies: 1})

	// The inbox still serves the next request.
	echo(t, s, server, echoed)
	ctx2, cancel2 := s.requestCtx()
	defer cancel2()
	if reply, err := client.Request(ctx2, &broker.Message{Destination: echoed, Body: []byte("again")}); err != nil || string(reply.Body) != "re: again" {
		t.Errorf("request after a late reply: %v", err)
	}
}

// testTelRequest checks the telemetry contract of a request: the requester's
// span covers the round trip; the replier's process span is a child of the
// request's send; the reply's send and its receipt are in the same trace,
// and the reply address appears in no span name.
func testTelRequest(t *testing.T, s Suite) {
	e := newTelEnv(t, s)
	dest := s.Destination(t)
	e.subscribe(t, dest, func(ctx context.Context, m *broker.Message) error {
		return e.b.Reply(ctx, m, &broker.Message{Body: []byte("pong")})
	})
	s.Start(t, e.b)

	ctx, cancel := s.requestCtx()
	defer cancel()
	req := &broker.Message{Destination: dest, Body: []byte("ping")}
	reply, err := e.b.Request(ctx, req)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	e.close(t)

	want := fmt.Sprintf("request %[1]s (client)\n  send %[1]s (producer)\n    process %[1]s (consumer)\n      send (producer)\n        process (consumer) links=1\n", dest)
	if got := e.rec.Tree(); got != want {
		t.Fatalf("span tree:\n%s\nwant:\n%s", got, want)
	}
	request := e.rec.SpanByName(t, "request "+dest)
	send := e.rec.SpanByName(t, "send "+dest)
	process := e.rec.SpanByName(t, "process "+dest)
	replySend := e.rec.SpanByName(t, "send")
	receipt := e.rec.SpanByName(t, "process")

	id := req.Headers.Get(driver.HeaderCorrelationID)
	wantReq := e.clientID(e.server([]attribute.KeyValue{
		semconv.MessagingSystemKey.String(e.info.System),
		semconv.MessagingOperationName("request"),
		semconv.MessagingDestinationName(dest),
		semconv.MessagingMessageConversationID(id),
	}))
	assertSpan(t, request, "request "+dest, trace.SpanKindClient, wantReq)
	assertRoot(t, request)
	assertOK(t, request)
	assertChild(t, send, request)
	assertChild(t, process, send)
	assertChild(t, replySend, process)
	assertChild(t, receipt, replySend)
	for _, sp := range []struct {
		name  string
		attrs []attribute.KeyValue
	}{{"reply send", replySend.Attributes()}, {"receipt", receipt.Attributes()}} {
		set := attribute.NewSet(sp.attrs...)
		if v, ok := set.Value(semconv.MessagingDestinationTemporaryKey); !ok || !v.AsBool() {
			t.Errorf("%s span: messaging.destination.temporary not true: %s", sp.name, attrString(set))
		}
		if v, ok := set.Value(semconv.MessagingDestinationNameKey); !ok || v.AsString() != req.ReplyTo {
			t.Errorf("%s span: destination %q, want the reply address %q", sp.name, v.AsString(), req.ReplyTo)
		}
	}
	if l := receipt.Links(); len(l) != 1 || l[0].SpanContext.SpanID() != request.SpanContext().SpanID() {
		t.Errorf("receipt links %v, want one to the request span", l)
	}
	if sc := injected(t, reply.Headers); sc.SpanID() != replySend.SpanContext().SpanID() {
		t.Errorf("reply carries span %s, want the reply's send span %s", sc.SpanID(), replySend.SpanContext().SpanID())
	}
}

// testTelRequestError: an error reply fails the request span with the
// remote error type; the replier's span and the reply's receipt are not
// failed, since the replier answered and the answer arrived. The round
// trip is a messaging.client.operation.duration point named request.
func testTelRequestError(t *testing.T, s Suite) {
	e := newTelEnv(t, s)
	dest := s.Destination(t)
	e.subscribe(t, dest, func(ctx context.Context, m *broker.Message) error {
		return e.b.ReplyError(ctx, m, errCardDeclined{})
	})
	s.Start(t, e.b)

	ctx, cancel := s.requestCtx()
	defer cancel()
	_, err := e.b.Request(ctx, &broker.Message{Destination: dest})
	if !errors.Is(err, broker.ErrRemote) {
		t.Fatalf("request: %v, want an error reply", err)
	}
	e.close(t)

	e.assertSpanCount(t, 5)
	request := e.rec.SpanByName(t, "request "+dest)
	assertFailed(t, request, err)
	reqAttrs := attribute.NewSet(request.Attributes()...)
	if v, _ := reqAttrs.Value(semconv.ErrorTypeKey); v.AsString() != "card_declined" {
		t.Errorf("request span error.type %q, want card_declined", v.AsString())
	}
	for _, name := range []string{"send " + dest, "process " + dest, "send", "process"} {
		assertOK(t, e.rec.SpanByName(t, name))
	}
	m, ok := e.rec.Metric(t, "messaging.client.operation.duration")
	if !ok {
		t.Fatal("no messaging.client.operation.duration")
	}
	found := false
	for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
		if v, _ := dp.Attributes.Value(semconv.MessagingOperationNameKey); v.AsString() == "request" {
			found = true
			if et, _ := dp.Attributes.Value(semconv.ErrorTypeKey); et.AsString() != "card_declined" || dp.Count != 1 {
				t.Errorf("request duration point %s, count %d", attrString(dp.Attributes), dp.Count)
			}
		}
	}
	if !found {
		t.Error("no request duration point")
	}
}

// testReqCallerID: a correlation id the caller set reaches a byte-level
// replier and comes back on the reply, with the replier's headers.
func testReqCallerID(t *testing.T, s Suite) {
	dest := s.Destination(t)
	server, client := s.Broker(t), s.Broker(t)
	err := server.Subscribe(dest, func(ctx context.Context, m *broker.Message) error {
		reply := &broker.Message{Body: []byte(m.Headers.Get(driver.HeaderCorrelationID))}
		reply.Headers.Set("x-replier", "billing")
		return server.Reply(ctx, m, reply)
	}, reqOptions(s, dest)...)
	if err != nil {
		t.Fatal(err)
	}
	s.Start(t, server)

	ctx, cancel := s.requestCtx()
	defer cancel()
	req := &broker.Message{Destination: dest}
	req.Headers.Set(driver.HeaderCorrelationID, "caller-42")
	reply, err := client.Request(ctx, req)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if string(reply.Body) != "caller-42" {
		t.Errorf("replier saw correlation id %q, want the caller's caller-42", reply.Body)
	}
	if got := reply.Headers.Get(driver.HeaderCorrelationID); got != "caller-42" {
		t.Errorf("reply correlation id %q, want caller-42", got)
	}
	if got := reply.Headers.Get("x-replier"); got != "billing" {
		t.Errorf("reply header x-replier %q, want billing", got)
	}
	assertStats(t, client, broker.RequestStats{})
}

// testReqEnvelopes: a Requester of Envelopes sets the request's
// correlation id and headers and reads the reply's; the replier, a
// HandleResult handler of Envelopes, sees them and sets the reply's
// headers (and key, where keys travel) for that one result.
func testReqEnvelopes(t *testing.T, s Suite) {
	dest := s.Destination(t)
	server, client := s.Broker(t), s.Broker(t)
	err := broker.HandleResult(server, dest, func(_ context.Context, in broker.Envelope[testkit.Order]) (broker.Envelope[testkit.Invoice], error) {
		out := broker.Envelope[testkit.Invoice]{
			Value: testkit.Invoice{OrderID: in.Value.ID, Amount: 10 * in.Value.Quantity},
			Key:   "customer-" + in.Headers.Get("x-customer"),
		}
		out.Headers.Set("x-seen-correlation-id", in.CorrelationID)
		out.Headers.Set("x-invoice-status", "issued")
		return out, nil
	}, resultOptions(reqOptions(s, dest))...)
	if err != nil {
		t.Fatal(err)
	}
	s.Start(t, server)

	r := broker.Must(broker.NewRequester[broker.Envelope[testkit.Order], broker.Envelope[testkit.Invoice]](client, dest))
	ctx, cancel := s.requestCtx()
	defer cancel()
	req := broker.Envelope[testkit.Order]{Value: testkit.Order{ID: "o-7", Quantity: 2}, CorrelationID: "checkout-7"}
	req.Headers.Set("x-customer", "acme")
	reply, err := r.Request(ctx, req)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if want := (testkit.Invoice{OrderID: "o-7", Amount: 20}); reply.Value != want {
		t.Errorf("reply %+v, want %+v", reply.Value, want)
	}
	if reply.CorrelationID != "checkout-7" {
		t.Errorf("reply correlation id %q, want the caller's checkout-7", reply.CorrelationID)
	}
	if got := reply.Headers.Get("x-seen-correlation-id"); got != "checkout-7" {
		t.Errorf("replier saw correlation id %q, want checkout-7", got)
	}
	if got := reply.Headers.Get("x-invoice-status"); got != "issued" {
		t.Errorf("reply header x-invoice-status %q, want issued", got)
	}
	if s.Features.Keys && reply.Key != "customer-acme" {
		t.Errorf("reply key %q, want customer-acme", reply.Key)
	}
	eps := client.Endpoints()
	if len(eps) != 1 || eps[0].Payload != reflect.TypeFor[testkit.Order]() || eps[0].Reply != reflect.TypeFor[testkit.Invoice]() {
		t.Errorf("requester endpoints %+v, want Order replied with Invoice, not the envelopes", eps)
	}
}

// testReqSameCallerID: two requests in flight with the same caller
// correlation id each get their own reply, although the replier answers
// the later one first: replies are matched by the broker's own id.
func testReqSameCallerID(t *testing.T, s Suite) {
	dest := s.Destination(t)
	server, client := s.Broker(t), s.Broker(t)
	held := make(chan *broker.Message, 2)
	err := server.Subscribe(dest, func(_ context.Context, m *broker.Message) error {
		held <- m // answered below, once both are in
		return nil
	}, reqOptions(s, dest)...)
	if err != nil {
		t.Fatal(err)
	}
	s.Start(t, server)

	type result struct {
		body, reply, corr string
		err               error
	}
	results := make(chan result, 2)
	ctx, cancel := s.requestCtx()
	defer cancel()
	for _, body := range []string{"first", "second"} {
		go func() {
			req := &broker.Message{Destination: dest, Body: []byte(body)}
			req.Headers.Set(driver.HeaderCorrelationID, "same-id")
			reply, err := client.Request(ctx, req)
			if err != nil {
				results <- result{body: body, err: err}
				return
			}
			results <- result{body, string(reply.Body), reply.Headers.Get(driver.HeaderCorrelationID), nil}
		}()
	}
	var reqs []*broker.Message
	for range 2 {
		select {
		case m := <-held:
			reqs = append(reqs, m)
		case <-ctx.Done():
			t.Fatalf("the replier got %d of the 2 requests", len(reqs))
		}
	}
	for i := len(reqs) - 1; i >= 0; i-- {
		if err := server.Reply(ctx, reqs[i], &broker.Message{Body: append([]byte("re: "), reqs[i].Body...)}); err != nil {
			t.Fatalf("reply: %v", err)
		}
	}
	for range 2 {
		r := <-results
		if r.err != nil || r.reply != "re: "+r.body || r.corr != "same-id" {
			t.Errorf("request %q: reply %q with correlation id %q, error %v; want its own reply with same-id", r.body, r.reply, r.corr, r.err)
		}
	}
	assertStats(t, client, broker.RequestStats{})
}
