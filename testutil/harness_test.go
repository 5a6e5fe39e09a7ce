package testutil_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/testutil"
)

// A newcomer's test of "NATS order in → Kafka invoice out, traced": 17
// lines from the signature to the closing brace.
func TestBillingOrderBecomesInvoice(t *testing.T) {
	h := testutil.NewHarness(t, testutil.Synchronous())
	nats, kafka := h.Broker(), h.Broker()
	if err := wireBilling(nats, kafka); err != nil {
		t.Fatal(err)
	}
	err := broker.NewPublisher[Order](nats, "orders.eu").Publish(context.Background(), Order{ID: "42", Quantity: 2})
	if err != nil {
		t.Fatal(err)
	}
	testutil.AssertPublishedOne(t, h, "invoices", Invoice{OrderID: "42", Amount: 10}, testutil.Key("42"))
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
		h := testutil.NewHarness(t, testutil.Synchronous())
		nats, kafka := h.Broker(), h.Broker()
		if err := wireBilling(nats, kafka); err != nil {
			t.Fatal(err)
		}
		orders := broker.NewPublisher[Order](nats, "orders.eu")
		for _, id := range ids {
			if err := orders.Publish(context.Background(), Order{ID: id, Quantity: 2}); err != nil {
				t.Fatal(err)
			}
		}
		return h
	}
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
			testutil.AssertPublishedOne(t, h, "invoices", Invoice{OrderID: "42", Amount: 10}, testutil.Key("42"))
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
			testutil.AssertPublishedOne(t, h, "invoices", Invoice{OrderID: "42", Amount: 10}, testutil.Key("42"))
		})
		wantFailure(t, f, `want exactly one message to invoices with key "42", got 0`, "nothing was published at all")
	})
	t.Run("published elsewhere", func(t *testing.T) {
		f, _ := check(t, billing("42"), func(t testing.TB, h *testutil.Harness) {
			testutil.AssertPublishedOne(t, h, "invoice", Invoice{OrderID: "42", Amount: 10})
		})
		wantFailure(t, f, "nothing was published to invoice; published elsewhere:", "orders.eu (1)", "invoices (1)")
	})
	t.Run("other key", func(t *testing.T) {
		f, _ := check(t, billing("41"), func(t testing.TB, h *testutil.Harness) {
			testutil.AssertPublishedOne(t, h, "invoices", Invoice{OrderID: "42", Amount: 10}, testutil.Key("42"))
		})
		wantFailure(t, f, "got 0", "published to invoices:", `#1 key="41" content-type=application/json body="{\"order_id\":\"41\",\"amount\":10}"`)
	})
	t.Run("other value", func(t *testing.T) {
		f, _ := check(t, billing("42"), func(t testing.TB, h *testutil.Harness) {
			testutil.AssertPublishedOne(t, h, "invoices", Invoice{OrderID: "42", Amount: 11})
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
	h := testutil.NewHarness(t, testutil.Synchronous())
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
