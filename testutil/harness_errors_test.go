package testutil_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/testutil"
)

// OutOfStockError is a service's own error type.
type OutOfStockError struct{ SKU string }

func (e *OutOfStockError) Error() string { return "out of stock: " + e.SKU }

// TestHandlerErrorsFromTypedPublish: the typed publisher returns the
// handler's error after its last attempt, matched with errors.As, saying
// that the message was dropped; every attempt is still in Calls.
func TestHandlerErrorsFromTypedPublish(t *testing.T) {
	h := testutil.NewHarness(t, testutil.WithHandlerErrors())
	b := h.Broker()
	err := broker.Handle(b, "orders", func(_ context.Context, o Order) error {
		return &OutOfStockError{SKU: o.ID}
	}, broker.MaxAttempts(3))
	if err != nil {
		t.Fatal(err)
	}
	err = broker.Must(broker.NewPublisher[Order](b, "orders")).Publish(context.Background(), Order{ID: "sku-1"})
	var oos *OutOfStockError
	if !errors.As(err, &oos) || oos.SKU != "sku-1" {
		t.Fatalf("Publish returned %v, want the handler's *OutOfStockError", err)
	}
	if want := "testutil: handler of orders failed, message dropped: out of stock: sku-1"; err.Error() != want {
		t.Errorf("error text %q, want %q", err, want)
	}
	if n := len(h.Calls("orders")); n != 3 {
		t.Errorf("%d calls, want 3 attempts", n)
	}
	// The send succeeded: only the process spans carry the failure.
	for _, s := range h.Recorder().Spans() {
		if failed := s.Status().Code == codes.Error; failed != (s.Name() == "process orders") {
			t.Errorf("span %q has status %v", s.Name(), s.Status())
		}
	}
}

// TestHandlerErrorsRetrySucceeds: a handler that fails once and then
// succeeds leaves Publish without an error.
func TestHandlerErrorsRetrySucceeds(t *testing.T) {
	h := testutil.NewHarness(t, testutil.WithHandlerErrors())
	b := h.Broker()
	var attempts atomic.Int32
	err := b.Subscribe("orders", func(context.Context, *broker.Message) error {
		if attempts.Add(1) == 1 {
			return errors.New("flaky")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), &broker.Message{Destination: "orders", Body: []byte("x")}); err != nil {
		t.Errorf("Publish returned %v, want nil: the second attempt succeeded", err)
	}
	if calls := h.Calls("orders"); len(calls) != 2 || calls[0].Err == nil || calls[1].Err != nil {
		t.Errorf("calls %+v, want a failed attempt then a successful one", calls)
	}
}

// TestHandlerErrorsDecodeDeadLettered: a body the typed handler cannot
// decode comes back as a *broker.DecodeError, marked dead-lettered, and the
// dead letter is there.
func TestHandlerErrorsDecodeDeadLettered(t *testing.T) {
	h := testutil.NewHarness(t, testutil.WithHandlerErrors())
	b := h.Broker()
	var called atomic.Bool
	err := broker.Handle(b, "orders.*", func(context.Context, Order) error {
		called.Store(true)
		return nil
	}, broker.Group("billing"), broker.DeadLetter("dlq.orders"))
	if err != nil {
		t.Fatal(err)
	}
	msg := &broker.Message{Destination: "orders.eu", Body: []byte("{not json")}
	msg.Headers.Set(broker.HeaderContentType, "application/json")
	err = b.Publish(context.Background(), msg)
	var de *broker.DecodeError
	if !errors.As(err, &de) || !errors.Is(err, broker.ErrDecode) {
		t.Fatalf("Publish returned %v, want a *broker.DecodeError", err)
	}
	if !strings.HasPrefix(err.Error(), "testutil: handler of orders.* (group billing) failed, message dead-lettered: ") {
		t.Errorf("error text %q does not name the subscription and the dead letter", err)
	}
	if called.Load() {
		t.Error("the handler ran on an undecodable body")
	}
	if n := len(h.DeadLetters()); n != 1 {
		t.Errorf("%d dead letters, want 1", n)
	}
}

var (
	errStats   = errors.New("stats down")
	errMailer  = errors.New("mailer down")
	errAuditor = errors.New("auditor down")
)

// TestHandlerErrorsSeveralHandlersAndOnwardPublish: the failures of two
// handlers of the published message and of the handler of an onward
// publish are joined; the onward publish itself returns nil to its
// handler, which therefore succeeds as it would in production, and a
// handler that succeeds adds nothing.
func TestHandlerErrorsSeveralHandlersAndOnwardPublish(t *testing.T) {
	h := testutil.NewHarness(t, testutil.WithHandlerErrors())
	b := h.Broker()
	invoices := broker.Must(broker.NewPublisher[Invoice](b, "invoices"))
	must(t, broker.HandleResult(b, "orders.*", func(_ context.Context, o Order) (Invoice, error) {
		return Invoice{OrderID: o.ID, Amount: 5 * o.Quantity}, nil
	}, broker.Group("billing"), broker.PublishTo(invoices)))
	must(t, broker.Handle(b, "orders.*", func(context.Context, Order) error { return errStats },
		broker.Group("stats"), broker.MaxAttempts(1)))
	must(t, broker.Handle(b, "orders.*", func(context.Context, Order) error { return nil }, broker.Group("audit")))
	must(t, broker.Handle(b, "invoices", func(context.Context, Invoice) error { return errMailer }, broker.MaxAttempts(2)))

	err := broker.Must(broker.NewPublisher[Order](b, "orders.eu")).Publish(context.Background(), Order{ID: "42", Quantity: 2})
	if !errors.Is(err, errStats) || !errors.Is(err, errMailer) {
		t.Fatalf("Publish returned %v, want both handler failures", err)
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 2 {
		t.Errorf("want the two failures joined, got %q", err)
	}
	for _, want := range []string{"handler of orders.* (group stats) failed", "handler of invoices failed, message dropped: mailer down"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if calls := h.Calls("orders.*"); len(calls) != 3 {
		t.Errorf("%d calls on orders.*, want 3 (billing, stats, audit once each)", len(calls))
	}
	testutil.AssertPublishedOnce(t, h, "invoices", Invoice{OrderID: "42", Amount: 10})
	if n := len(h.Calls("invoices")); n != 2 {
		t.Errorf("%d calls on invoices, want 2 attempts", n)
	}
}

// TestHandlerErrorsPanicAndBatch: a handler's panic comes back as a
// *broker.PanicError from PublishBatch.
func TestHandlerErrorsPanicAndBatch(t *testing.T) {
	h := testutil.NewHarness(t, testutil.WithHandlerErrors())
	b := h.Broker()
	must(t, b.Subscribe("jobs", func(context.Context, *broker.Message) error { panic("boom") }, broker.MaxAttempts(1)))
	err := b.PublishBatch(context.Background(), []*broker.Message{
		{Destination: "jobs", Body: []byte("1")}, {Destination: "other", Body: []byte("2")},
	})
	var pe *broker.PanicError
	if !errors.As(err, &pe) || pe.Value != "boom" {
		t.Fatalf("PublishBatch returned %v, want a *broker.PanicError", err)
	}
}

// TestHandlerErrorsOptIn: without WithHandlerErrors a synchronous Publish
// succeeds whatever its handlers do; the failure is only in Calls.
func TestHandlerErrorsOptIn(t *testing.T) {
	h := testutil.NewHarness(t, testutil.WithSyncDelivery())
	b := h.Broker()
	must(t, b.Subscribe("jobs", func(context.Context, *broker.Message) error { return errAuditor }, broker.MaxAttempts(1)))
	if err := b.Publish(context.Background(), &broker.Message{Destination: "jobs"}); err != nil {
		t.Errorf("Publish returned %v without WithHandlerErrors", err)
	}
	if calls := h.Calls("jobs"); len(calls) != 1 || !errors.Is(calls[0].Err, errAuditor) {
		t.Errorf("calls %+v", calls)
	}
}

// TestHandlerErrorsRequest: a request whose replier fails returns the
// replier's error as well as the error reply.
func TestHandlerErrorsRequest(t *testing.T) {
	h := testutil.NewHarness(t, testutil.WithHandlerErrors())
	b := h.Broker()
	must(t, broker.HandleResult(b, "quote", func(context.Context, Order) (Invoice, error) {
		return Invoice{}, errStats
	}, broker.MaxAttempts(1)))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := broker.Must(broker.NewRequester[Order, Invoice](b, "quote")).Request(ctx, Order{ID: "1"})
	if !errors.Is(err, errStats) || !strings.Contains(err.Error(), "handler of quote failed") {
		t.Errorf("Request returned %v, want the replier's error", err)
	}
}
