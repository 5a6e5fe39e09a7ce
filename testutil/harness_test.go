package testutil_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
)

// A newcomer's test of "NATS order in → Kafka invoice out, traced": 17
// lines from the signature to the closing brace.
func TestBillingOrderBecomesInvoice(t *testing.T) {
	h := testutil.NewHarness(t, testutil.WithSyncDelivery())
	nats, kafka := h.Broker(), h.Broker()
	if err := wireBilling(nats, kafka); err != nil {
		t.Fatal(err)
	}
	err := broker.Must(broker.NewPublisher[Order](nats, "orders.eu")).Publish(context.Background(), Order{ID: "42", Quantity: 2})
	if err != nil {
		t.Fatal(err)
	}
	testutil.AssertPublishedOnce(t, h, "invoices", Invoice{OrderID: "42", Amount: 10}, testutil.Key("42"))
	h.AssertNoDeadLetters(t)
	h.AssertSpanTree(t, `
		send orders.eu (producer)
		  process orders.* (consumer)
		    send invoices (producer)`)
}

// check runs body against a fake testing.TB and returns what it reported.
func check(t *testing.T, h func(t testing.TB) *testutil.Harness, body func(testing.TB, *testutil.Harness)) (failures string, completed bool) {
	t.Helper()
	ft := newFakeT(nil)
	defer ft.finish()
	var hh *testutil.Harness
	if !ft.run(func() { hh = h(ft) }) {
		t.Fatalf("setup failed: %s", ft.failures())
	}
	completed = ft.run(func() { body(ft, hh) })
	return ft.failures(), completed
}

// billing returns a synchronous harness running the billing service, after
// the order with id (and quantity 2) was published.
func billing(ids ...string) func(testing.TB) *testutil.Harness {
	return func(t testing.TB) *testutil.Harness {
		h := testutil.NewHarness(t, testutil.WithSyncDelivery())
		nats, kafka := h.Broker(), h.Broker()
		if err := wireBilling(nats, kafka); err != nil {
			t.Fatal(err)
		}
		orders := broker.Must(broker.NewPublisher[Order](nats, "orders.eu"))
		for _, id := range ids {
			if err := orders.Publish(context.Background(), Order{ID: id, Quantity: 2}); err != nil {
				t.Fatal(err)
			}
		}
		return h
	}
}

// invoiceWithHeaders returns a harness after one invoice was published
// with the headers Tenant (in that case) and x-source, and the trace
// headers the harness's telemetry adds.
func invoiceWithHeaders(t testing.TB) *testutil.Harness {
	h := testutil.NewHarness(t, testutil.WithSyncDelivery())
	msg := &broker.Message{Destination: "invoices", Body: []byte(`{"order_id":"42","amount":10}`)}
	msg.Headers.Set(broker.HeaderContentType, "application/json")
	msg.Headers.Set("Tenant", "us")
	msg.Headers.Set("x-source", "api")
	if err := h.Broker().Publish(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	return h
}

func wantFailure(t *testing.T, failures string, parts ...string) {
	t.Helper()
	if failures == "" {
		t.Fatalf("the assertion passed; want it to fail with %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(failures, p) {
			t.Errorf("failure does not say %q:\n%s", p, failures)
		}
	}
}

// The assertions pass on what happened and fail, saying why, on what did
// not: a missing publish, another value, another key, a second call, a
// dead letter.
func TestHarnessAssertionsFail(t *testing.T) {
	t.Run("published one passes", func(t *testing.T) {
		f, done := check(t, billing("42"), func(t testing.TB, h *testutil.Harness) {
			testutil.AssertPublishedOnce(t, h, "invoices", Invoice{OrderID: "42", Amount: 10}, testutil.Key("42"))
			if inv := testutil.PublishedOne[Invoice](t, h, "invoices"); inv.Amount != 10 {
				t.Errorf("PublishedOne: %+v", inv)
			}
			testutil.AssertHandledOnce(t, h, "orders.*", Order{ID: "42", Quantity: 2})
			h.AssertNoDeadLetters(t)
		})
		if f != "" || !done {
			t.Errorf("assertions failed on a correct run:\n%s", f)
		}
	})
	t.Run("publish missing", func(t *testing.T) {
		f, _ := check(t, billing(), func(t testing.TB, h *testutil.Harness) {
			testutil.AssertPublishedOnce(t, h, "invoices", Invoice{OrderID: "42", Amount: 10}, testutil.Key("42"))
		})
		wantFailure(t, f, `want exactly one message to invoices with key "42", got 0`, "nothing was published at all")
	})
	t.Run("published elsewhere", func(t *testing.T) {
		f, _ := check(t, billing("42"), func(t testing.TB, h *testutil.Harness) {
			testutil.AssertPublishedOnce(t, h, "invoice", Invoice{OrderID: "42", Amount: 10})
		})
		wantFailure(t, f, "nothing was published to invoice; published elsewhere:", "orders.eu (1)", "invoices (1)")
	})
	t.Run("other key", func(t *testing.T) {
		f, _ := check(t, billing("41"), func(t testing.TB, h *testutil.Harness) {
			testutil.AssertPublishedOnce(t, h, "invoices", Invoice{OrderID: "42", Amount: 10}, testutil.Key("42"))
		})
		wantFailure(t, f, "got 0", "published to invoices:", `#1 key="41" content-type=application/json body="{\"order_id\":\"41\",\"amount\":10}"`)
	})
	t.Run("other header", func(t *testing.T) {
		f, _ := check(t, invoiceWithHeaders, func(t testing.TB, h *testutil.Harness) {
			testutil.AssertPublishedOnce(t, h, "invoices", Invoice{OrderID: "42", Amount: 10},
				testutil.Header("tenant", "eu"), testutil.Header("region", "eu"))
		})
		wantFailure(t, f, `want exactly one message to invoices with header tenant="eu" with header region="eu", got 0`,
			`#1 content-type=application/json headers={Tenant="us", x-source="api", region=<absent>} body="{\"order_id\":\"42\",\"amount\":10}"`)
		if strings.Contains(f, "traceparent") {
			t.Errorf("the failure shows the trace headers nobody asked for:\n%s", f)
		}
	})
	t.Run("trace header asked for", func(t *testing.T) {
		f, _ := check(t, invoiceWithHeaders, func(t testing.TB, h *testutil.Harness) {
			testutil.AssertPublishedOnce(t, h, "invoices", Invoice{OrderID: "42", Amount: 10}, testutil.Header("traceparent", "00-x"))
		})
		wantFailure(t, f, `headers={Tenant="us", x-source="api", traceparent="00-`)
	})
	t.Run("other value", func(t *testing.T) {
		f, _ := check(t, billing("42"), func(t testing.TB, h *testutil.Harness) {
			testutil.AssertPublishedOnce(t, h, "invoices", Invoice{OrderID: "42", Amount: 11})
		})
		wantFailure(t, f, "the testutil_test.Invoice published to invoices differs (-want +got)", "-", "Amount:", "11", "+", "10")
	})
	t.Run("published one stops the test", func(t *testing.T) {
		f, done := check(t, billing("42", "43"), func(t testing.TB, h *testutil.Harness) {
			testutil.PublishedOne[Invoice](t, h, "invoices")
		})
		if done {
			t.Error("PublishedOne returned after finding two messages")
		}
		wantFailure(t, f, "want exactly one message to invoices, got 2", "#1", "#2")
	})
	t.Run("handled twice", func(t *testing.T) {
		f, _ := check(t, billing("42", "43"), func(t testing.TB, h *testutil.Harness) {
			testutil.AssertHandledOnce(t, h, "orders.*", Order{ID: "42", Quantity: 2})
		})
		wantFailure(t, f, "want the handler for orders.* called once with one message, got 2 call(s)", "call 2: 1 message(s)")
	})
	t.Run("handled with another value", func(t *testing.T) {
		f, _ := check(t, billing("43"), func(t testing.TB, h *testutil.Harness) {
			testutil.AssertHandledOnce(t, h, "orders.*", Order{ID: "42", Quantity: 2})
		})
		wantFailure(t, f, "the handler for orders.* was called with another testutil_test.Order", `"42"`, `"43"`)
	})
	t.Run("dead letter", func(t *testing.T) {
		f, _ := check(t, billing("42"), func(t testing.TB, h *testutil.Harness) {
			// An order that does not decode is dead-lettered at once.
			bad := &broker.Message{Destination: "orders.us", Body: []byte("{")}
			if err := h.Broker().Publish(context.Background(), bad); err != nil {
				t.Fatal(err)
			}
			h.AssertNoDeadLetters(t)
		})
		wantFailure(t, f, "want no dead letters, got 1", "billing.dead from orders.us after 1 attempt(s): tracebus: decode application/json")
	})
}

// The span tree assertion compares names, kinds, nesting, errors and link
// targets, and shows a diff.
func TestAssertSpanTree(t *testing.T) {
	h := testutil.NewHarness(t, testutil.WithSyncDelivery())
	b := h.Broker()
	boom := errors.New("boom")
	must(t, b.Subscribe("fails", func(context.Context, *broker.Message) error { return broker.Permanent(boom) }))
	must(t, b.SubscribeBatch("events", func(context.Context, []*broker.Message) error { return nil }))
	ctx := context.Background()
	must(t, b.Publish(ctx, &broker.Message{Destination: "fails"}))
	must(t, b.PublishBatch(ctx, []*broker.Message{{Destination: "events"}, {Destination: "events"}}))
	// The batch's process span starts a trace of its own, linked to the
	// messages' create spans.
	const want = `
		send fails (producer)
		  process fails (consumer) ERROR "boom"
		create events (producer)
		create events (producer)
		send events (client) links=[create events, create events]
		process events (consumer) links=[create events, create events]
	`
	h.AssertSpanTree(t, want)

	for _, bad := range []struct{ name, want, says string }{
		{"missing span", strings.Replace(want, "\t\tcreate events (producer)\n", "", 1), "+ create events (producer)"},
		{"other kind", strings.Replace(want, "(client)", "(producer)", 1),
			"- send events (producer) links=[create events, create events]\n+ send events (client) links=[create events, create events]"},
		{"no error", strings.Replace(want, ` ERROR "boom"`, "", 1), "-   process fails (consumer)\n+   process fails (consumer) ERROR \"boom\""},
		{"other parent", strings.Replace(want, "\t\t  process fails", "\t\tprocess fails", 1), "- process fails"},
		{"other link", strings.Replace(want, "(client) links=[create events, create events]", "(client) links=[create events]", 1), "- send events (client) links=[create events]"},
	} {
		ft := newFakeT(nil)
		ft.run(func() { h.AssertSpanTree(ft, bad.want) })
		f := ft.failures()
		if !strings.Contains(f, "span tree differs (-want +got)") || !strings.Contains(f, bad.says) {
			t.Errorf("%s: failure\n%s\ndoes not say %q", bad.name, f, bad.says)
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Batches and retries run to their end within Publish: a batch handler
// gets the messages of one PublishBatch at once, and a failing handler is
// retried MaxAttempts times without waiting its hour of backoff, then
// dead-lettered.
func TestHarnessBatchesAndRetries(t *testing.T) {
	h := testutil.NewHarness(t, testutil.WithSyncDelivery())
	b := h.Broker()
	var sums []int
	must(t, broker.HandleBatch(b, "amounts", func(_ context.Context, vs []int) error {
		sums = append(sums, len(vs))
		return nil
	}, broker.Batch(3, 0)))
	must(t, broker.Handle(b, "jobs", func(context.Context, string) error {
		return errors.New("busy")
	}, broker.MaxAttempts(3), broker.RetryBackoff(broker.ConstantBackoff(time.Hour)), broker.DeadLetter("jobs.dead")))

	ctx := context.Background()
	must(t, broker.Must(broker.NewPublisher[int](b, "amounts")).PublishBatch(ctx, []int{1, 2, 3, 4}))
	must(t, broker.Must(broker.NewPublisher[string](b, "jobs")).Publish(ctx, "j-1"))

	if !slices.Equal(sums, []int{3, 1}) {
		t.Errorf("batch sizes %v, want [3 1]", sums)
	}
	if got := testutil.Handled[int](t, h, "amounts"); !slices.Equal(got, []int{1, 2, 3, 4}) {
		t.Errorf("handled %v", got)
	}
	calls := h.Calls("jobs")
	if len(calls) != 3 {
		t.Fatalf("%d calls of the jobs handler, want 3", len(calls))
	}
	for i, c := range calls {
		if c.Err == nil || c.Messages[0].Delivery.DeliveryCount != i+1 {
			t.Errorf("call %d: delivery %d, error %v", i+1, c.Messages[0].Delivery.DeliveryCount, c.Err)
		}
	}
	if got := testutil.Published[string](t, h, "jobs.dead", testutil.Header(broker.HeaderDeadLetterAttempts, "3")); !slices.Equal(got, []string{"j-1"}) {
		t.Errorf("dead letters %v", got)
	}
	if dead := h.DeadLetters(); len(dead) != 1 {
		t.Errorf("%d dead letters, want 1", len(dead))
	}
}

// Request and reply the NATS way, on the memory transport: the requester
// listens on its own reply subject and publishes with ReplyTo; the
// responder's result goes there. With synchronous delivery the reply has
// arrived when Publish returns, and the four hops form one trace. The
// reply's send span has no destination in its name: a reply address is
// temporary (see Broker.Reply).
func TestHarnessReplyTo(t *testing.T) {
	h := testutil.NewHarness(t, testutil.WithSyncDelivery())
	client, server := h.Broker(), h.Broker()
	must(t, broker.HandleResult(server, "prices.get", func(_ context.Context, sku string) (int, error) {
		return 100 * len(sku), nil
	}))
	var price int
	must(t, broker.Handle(client, "_INBOX.client-1", func(_ context.Context, v int) error {
		price = v
		return nil
	}))
	req := &broker.Message{Destination: "prices.get", Body: []byte(`"abc"`), ReplyTo: "_INBOX.client-1"}
	must(t, client.Publish(context.Background(), req))

	if price != 300 {
		t.Errorf("reply %d, want 300", price)
	}
	testutil.AssertPublishedOnce(t, h, "_INBOX.client-1", 300)
	h.AssertSpanTree(t, `
		send prices.get (producer)
		  process prices.get (consumer)
		    send (producer)
		      process _INBOX.client-1 (consumer)
	`)
}

// Without WithSyncDelivery the brokers deliver asynchronously, as the memory
// transport always does; the record and telemetry work the same, and a
// test waits on its own channel.
func TestHarnessAsynchronous(t *testing.T) {
	h := testutil.NewHarness(t)
	b := h.Broker()
	done := make(chan struct{})
	must(t, broker.Handle(b, "pings", func(context.Context, string) error {
		close(done)
		return nil
	}))
	must(t, broker.Must(broker.NewPublisher[string](b, "pings")).Publish(context.Background(), "ping"))
	if got := testutil.Published[string](t, h, "pings"); !slices.Equal(got, []string{"ping"}) {
		t.Errorf("published %v", got)
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the handler did not run")
	}
	if _, ok := h.Recorder().Metric(t, "messaging.client.sent.messages"); !ok {
		t.Error("no messaging.client.sent.messages metric recorded")
	}
}

// A service whose wiring runs its brokers in a broker.App gets unstarted
// brokers and starts the App itself.
func TestHarnessWithApp(t *testing.T) {
	h := testutil.NewHarness(t, testutil.WithSyncDelivery(), testutil.WithoutStart())
	nats, kafka := h.Broker(), h.Broker()
	must(t, wireBilling(nats, kafka))
	app := broker.NewApp(broker.WithBrokers(nats, kafka))
	ctx := context.Background()
	must(t, app.Start(ctx))
	t.Cleanup(func() { must(t, app.Stop(ctx)) })

	must(t, broker.Must(broker.NewPublisher[Order](nats, "orders.eu")).Publish(ctx, Order{ID: "7", Quantity: 1}))
	testutil.AssertPublishedOnce(t, h, "invoices", Invoice{OrderID: "7", Amount: 5}, testutil.Key("7"))
}

// upperCodec is a service's own codec: text, upper-cased on the wire.
type upperCodec struct{}

func (upperCodec) ContentType() string { return "text/x-upper" }
func (upperCodec) Marshal(v any) ([]byte, error) {
	return []byte(strings.ToUpper(v.(string))), nil
}
func (upperCodec) Unmarshal(data []byte, v any) error {
	*v.(*string) = strings.ToLower(string(data))
	return nil
}

// Options reach every broker and the telemetry middleware, and the typed
// accessors decode with the service's own codec.
func TestHarnessOptions(t *testing.T) {
	h := testutil.NewHarness(t, testutil.WithSyncDelivery(),
		testutil.WithBrokerOptions(broker.WithCodec(upperCodec{})),
		testutil.WithTelemetryOptions(middleware.WithSettleSpans()),
		testutil.WithCodecs(upperCodec{}))
	b := h.Broker()
	must(t, broker.Handle(b, "greetings", func(context.Context, string) error { return nil }))
	must(t, broker.Must(broker.NewPublisher[string](b, "greetings")).Publish(context.Background(), "hello"))

	if body := string(h.Published("greetings")[0].Body); body != "HELLO" {
		t.Errorf("body %q, want the service codec's HELLO", body)
	}
	testutil.AssertPublishedOnce(t, h, "greetings", "hello", testutil.Header(broker.HeaderContentType, "text/x-upper"))
	testutil.AssertHandledOnce(t, h, "greetings", "hello")
	h.AssertSpanTree(t, `
		send greetings (producer)
		  process greetings (consumer)
		    ack greetings (client)
	`)
}
