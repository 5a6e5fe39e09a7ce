package testutil_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// The service of the cross-transport tests: the billing service's shape
// with destinations every system accepts (Kafka topics have no
// wildcards). An order with no quantity fails permanently and is
// dead-lettered; an order whose ID is in flaky fails its first attempt.
func wireBillingOn(in, out *broker.Broker, flaky *atomic.Int32) error {
	invoices := broker.Must(broker.NewPublisher[Invoice](out, "invoices",
		broker.KeyFunc(func(inv Invoice) string { return inv.OrderID })))
	return broker.HandleResult(in, "orders", func(_ context.Context, o Order) (Invoice, error) {
		if o.Quantity <= 0 {
			return Invoice{}, fmt.Errorf("billing: order %s: quantity %d: %w", o.ID, o.Quantity, broker.ErrPermanent)
		}
		if o.ID == "flaky" && flaky.Add(1) == 1 {
			return Invoice{}, errors.New("billing: ledger busy")
		}
		return Invoice{OrderID: o.ID, Amount: 5 * o.Quantity}, nil
	}, broker.Group("billing"), broker.PublishTo(invoices), broker.DeadLetter("billing.dead"),
		broker.MaxAttempts(3), broker.RetryBackoff(broker.ConstantBackoff(10*time.Millisecond)))
}

// harnessTransports are the transports the same service test runs on.
var harnessTransports = []struct {
	name, system string
	opts         []testutil.HarnessOption
}{
	{"memory", "memory", nil},
	{"nats", "nats", []testutil.HarnessOption{testutil.OnNATS("")}},
	{"jetstream", "nats", []testutil.HarnessOption{testutil.OnNATS("", natsbroker.WithStream(jetstream.StreamConfig{
		Name: "BILLING", Subjects: []string{"orders", "invoices", "billing.dead"}, Storage: jetstream.MemoryStorage,
	}))}},
	{"kafka", "kafka", []testutil.HarnessOption{testutil.OnKafka("")}},
}

// TestHarnessTransports runs one service test on memory, core NATS,
// JetStream and Kafka: the assertions, the errors out of the harness and
// the span tree are the same; on the real transports the harness waits
// until it settled instead of delivering synchronously.
func TestHarnessTransports(t *testing.T) {
	for _, tr := range harnessTransports {
		t.Run(tr.name, func(t *testing.T) {
			var flaky atomic.Int32
			h := testutil.NewHarness(t, append(tr.opts, testutil.WithHandlerErrors())...)
			in, out := h.Broker(), h.Broker()
			if err := wireBillingOn(in, out, &flaky); err != nil {
				t.Fatal(err)
			}
			orders := broker.Must(broker.NewPublisher[Order](in, "orders"))

			if err := orders.Publish(t.Context(), Order{ID: "42", Quantity: 2}); err != nil {
				t.Fatalf("publish: %v", err)
			}
			testutil.AssertPublishedOnce(t, h, "invoices", Invoice{OrderID: "42", Amount: 10}, testutil.Key("42"))
			testutil.AssertHandledOnce(t, h, "orders", Order{ID: "42", Quantity: 2})
			h.AssertNoDeadLetters(t)
			h.AssertSpanTree(t, `
				send orders (producer)
				  process orders (consumer)
				    send invoices (producer)`)
			for _, s := range h.Recorder().Spans() {
				if got := spanAttr(s, "messaging.system"); got != tr.system {
					t.Errorf("span %q on messaging.system %q, want %q", s.Name(), got, tr.system)
				}
			}

			// A permanent failure comes out of the publish that caused
			// it, dead-lettered once.
			err := orders.Publish(t.Context(), Order{ID: "43"})
			if !errors.Is(err, broker.ErrPermanent) {
				t.Fatalf("publish of an order without quantity: %v, want ErrPermanent", err)
			}
			if dead := h.DeadLetters(); len(dead) != 1 || dead[0].Destination != "billing.dead" {
				t.Fatalf("dead letters: %d, want 1 to billing.dead", len(dead))
			}

			// A failure that a retry cures returns nothing; the handler
			// was called twice.
			if err := orders.Publish(t.Context(), Order{ID: "flaky", Quantity: 1}); err != nil {
				t.Fatalf("publish of a flaky order: %v", err)
			}
			testutil.AssertPublishedOnce(t, h, "invoices", Invoice{OrderID: "flaky", Amount: 5}, testutil.Key("flaky"))
			if got := testutil.Handled[Order](t, h, "orders"); len(got) != 4 {
				t.Errorf("handled %d orders, want 4 (42, 43, flaky twice): %+v", len(got), got)
			}
		})
	}
}

// TestHarnessTransportsAsync runs the service without synchronous
// delivery: Publish returns at once, and the assertions wait until the
// harness settled.
func TestHarnessTransportsAsync(t *testing.T) {
	for _, tr := range harnessTransports[1:] {
		t.Run(tr.name, func(t *testing.T) {
			var flaky atomic.Int32
			h := testutil.NewHarness(t, tr.opts...)
			in, out := h.Broker(), h.Broker()
			if err := wireBillingOn(in, out, &flaky); err != nil {
				t.Fatal(err)
			}
			orders := broker.Must(broker.NewPublisher[Order](in, "orders"))
			for _, o := range []Order{{ID: "1", Quantity: 1}, {ID: "flaky", Quantity: 2}, {ID: "3"}} {
				if err := orders.Publish(t.Context(), o); err != nil {
					t.Fatalf("publish %s: %v", o.ID, err)
				}
			}
			testutil.AssertPublishedOnce(t, h, "invoices", Invoice{OrderID: "1", Amount: 5}, testutil.Key("1"))
			testutil.AssertPublishedOnce(t, h, "invoices", Invoice{OrderID: "flaky", Amount: 10}, testutil.Key("flaky"))
			if n := len(h.Published("invoices")); n != 2 {
				t.Errorf("%d invoices, want 2", n)
			}
			if dead := h.DeadLetters(); len(dead) != 1 {
				t.Errorf("%d dead letters, want 1", len(dead))
			}
			if n := len(h.Calls("orders")); n != 4 {
				t.Errorf("%d calls, want 4", n)
			}
		})
	}
}

// TestHarnessNotSettled fails when a subscription does not get what it is
// owed within the wait, naming it.
func TestHarnessNotSettled(t *testing.T) {
	url := natstest.New(t).URL() // the fake T has no TempDir for natstest
	ft := newFakeT(nil)
	func() {
		defer ft.finish()
		h := testutil.NewHarness(ft, testutil.OnNATS(url), testutil.WithWaitTimeout(200*time.Millisecond))
		b := h.Broker()
		release := make(chan struct{})
		defer close(release)
		if err := b.Subscribe("stuck", func(ctx context.Context, _ *broker.Message) error {
			<-release
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(context.Background(), &broker.Message{Destination: "stuck"}); err != nil {
			t.Fatal(err)
		}
		h.Published("stuck")
	}()
	want := "did not settle within 200ms: 1 delivery(ies) running; stuck handled 0 of 1 message(s)"
	if got := ft.failures(); !strings.Contains(got, want) {
		t.Errorf("harness failure %q, want it to contain %q", got, want)
	}
}

// spanAttr returns the value of the span's attribute key, as text.
func spanAttr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

// TestHarnessRequestOnRealTransports: request/reply under a synchronous
// harness on NATS and Kafka: the request's publish waits until the
// replier finished, the reply still reaches the requester, and a failing
// replier's error comes out of Request.
func TestHarnessRequestOnRealTransports(t *testing.T) {
	errNoPrice := errors.New("quote: no price")
	for _, tr := range []struct {
		name string
		opt  testutil.HarnessOption
	}{
		{"nats", testutil.OnNATS("")},
		{"kafka", testutil.OnKafka("", kafkabroker.WithReplyTopic("harness.replies"))},
	} {
		t.Run(tr.name, func(t *testing.T) {
			h := testutil.NewHarness(t, tr.opt, testutil.WithHandlerErrors(), testutil.WithWaitTimeout(time.Minute))
			b := h.Broker()
			if err := broker.HandleResult(b, "quote", func(_ context.Context, o Order) (Invoice, error) {
				if o.Quantity == 0 {
					return Invoice{}, errNoPrice
				}
				return Invoice{OrderID: o.ID, Amount: 5 * o.Quantity}, nil
			}, broker.MaxAttempts(1)); err != nil {
				t.Fatal(err)
			}
			quote := broker.Must(broker.NewRequester[Order, Invoice](h.Broker(), "quote"))
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			inv, err := quote.Request(ctx, Order{ID: "7", Quantity: 3})
			if err != nil || inv != (Invoice{OrderID: "7", Amount: 15}) {
				t.Fatalf("Request = %+v, %v; want the invoice", inv, err)
			}
			if _, err := quote.Request(ctx, Order{ID: "8"}); !errors.Is(err, errNoPrice) {
				t.Errorf("Request of a failing replier returned %v, want its error", err)
			}
			if n := len(h.Calls("quote")); n != 2 {
				t.Errorf("%d calls of the replier, want 2", n)
			}
		})
	}
}

// TestHarnessBatchOnRealTransports: a batch delivery counts every message
// it carries; the harness settles once all were handled, however the
// transport cut them into batches.
func TestHarnessBatchOnRealTransports(t *testing.T) {
	for _, tr := range harnessTransports[1:] {
		t.Run(tr.name, func(t *testing.T) {
			h := testutil.NewHarness(t, tr.opts...)
			b := h.Broker()
			if err := b.SubscribeBatch("orders", func(context.Context, []*broker.Message) error { return nil },
				broker.Group("batch"), broker.Batch(3, 20*time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			orders := broker.Must(broker.NewPublisher[Order](h.Broker(), "orders"))
			for i := range 7 {
				if err := orders.Publish(t.Context(), Order{ID: fmt.Sprint(i), Quantity: 1}); err != nil {
					t.Fatal(err)
				}
			}
			if got := testutil.Handled[Order](t, h, "orders"); len(got) != 7 {
				t.Errorf("handled %d orders in batches, want 7", len(got))
			}
		})
	}
}
