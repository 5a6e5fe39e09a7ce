package main

import (
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
)

// services wires the example's four services on brokers of h, as run does
// on NATS and Kafka: the code under test is the production wiring.
type services struct {
	h        *testutil.Harness
	checkout *Checkout
	billing  *Billing
	logs     *testutil.LogBuffer
	shipped  atomic.Int32
	batches  chan int
}

func wire(t *testing.T, h *testutil.Harness) *services {
	t.Helper()
	s := &services{h: h, logs: &testutil.LogBuffer{}, batches: make(chan int, 100)}
	log := slog.New(middleware.NewLogHandler(slog.NewTextHandler(s.logs, nil)))
	rec := h.Recorder()
	checkoutNATS, fraudNATS, billingNATS, billingKafka, shippingKafka := h.Broker(), h.Broker(), h.Broker(), h.Broker(), h.Broker()
	s.checkout = NewCheckout(checkoutNATS, rec.TracerProvider, log)
	if err := WireFraud(fraudNATS, log); err != nil {
		t.Fatal(err)
	}
	bl, err := WireBilling(billingNATS, billingKafka, rec.TracerProvider, rec.MeterProvider, log, flakyOrder)
	if err != nil {
		t.Fatal(err)
	}
	s.billing = bl
	if err := WireShipping(shippingKafka, log, func(n int) { s.shipped.Add(int32(n)); s.batches <- n }); err != nil {
		t.Fatal(err)
	}
	return s
}

// The whole flow on the harness, synchronously: every order's trace is
// unbroken across NATS, the fraud request and Kafka; the invalid order is
// dead-lettered with its reason; the flaky one is retried; billing's
// custom span, event and counter are there.
func TestServices(t *testing.T) {
	h := testutil.NewHarness(t, testutil.WithSyncDelivery())
	s := wire(t, h)
	if err := placeOrders(t.Context(), s.checkout, 4); err != nil {
		t.Fatal(err)
	}

	// Invoices: one per valid order, keyed by customer.
	for _, id := range []string{"order-1", "order-2", "order-4"} {
		customer := "c-4" + strings.TrimPrefix(id, "order-")
		inv := testutil.PublishedOne[*Invoice](t, h, invoicesTopic, testutil.Key(customer))
		if inv.OrderID != id {
			t.Errorf("invoice for %s is for %s", customer, inv.OrderID)
		}
	}
	if got := s.shipped.Load(); got != 3 {
		t.Errorf("shipped %d invoices, want 3", got)
	}
	// The invalid order: dead-lettered once, with the reason.
	dead := h.DeadLetters()
	if len(dead) != 1 || !strings.Contains(dead[0].Headers.Get(broker.HeaderDeadLetterError), "quantity 0") {
		t.Fatalf("dead letters: %v", dead)
	}
	if s.billing.Rejected() != 1 {
		t.Errorf("billing saw %d dead letters, want 1", s.billing.Rejected())
	}
	// The flaky order: two billing attempts.
	if calls := h.Calls(ordersPattern); len(calls) != 5 {
		t.Errorf("billing handled %d deliveries, want 5 (4 orders, one retry)", len(calls))
	}

	spans := h.Recorder().Spans()
	for _, root := range testutil.SpansNamed(spans, "POST /checkout") {
		tr := inTrace(spans, root.SpanContext().TraceID())
		names := spanNames(tr)
		order := orderOf(t, tr)
		want := []string{"send " + ordersSubject, "process " + ordersPattern}
		if order == "order-3" {
			want = append(want, "send "+deadOrders, "process "+deadOrders)
		} else {
			// Shipping's batch span is a trace of its own that links
			// here (TestShippingBatchLinksEveryTrace).
			want = append(want, "request "+fraudSubject, "send "+fraudSubject, "process "+fraudSubject, "charge card", "send "+invoicesTopic)
		}
		for _, n := range want {
			if !names[n] {
				t.Errorf("%s: trace lacks %q:\n%s", order, n, testutil.Tree(tr))
			}
		}
		for _, sp := range tr {
			if sp != root && !hasParentIn(sp, tr) {
				t.Errorf("%s: %q is cut off from its trace:\n%s", order, sp.Name(), testutil.Tree(tr))
			}
		}
	}

	// The retry and the rejection are visible on the process spans.
	var failed []string
	for _, p := range testutil.SpansNamed(spans, "process "+ordersPattern) {
		if p.Status().Code == codes.Error {
			failed = append(failed, errorType(p))
		}
	}
	if strings.Join(failed, ",") != "_OTHER,validation" && strings.Join(failed, ",") != "validation,_OTHER" {
		t.Errorf("failed billing spans with error.type %v, want one _OTHER (the retried timeout) and one validation", failed)
	}

	// Billing's own span, its event and status, and its counter.
	charges := testutil.SpansNamed(spans, "charge card")
	if len(charges) != 3 {
		t.Fatalf("%d charge card spans, want 3", len(charges))
	}
	for _, c := range charges {
		if c.Status().Code != codes.Ok || len(c.Events()) != 1 || c.Events()[0].Name != "card authorised" {
			t.Errorf("charge card span: status %v, events %v", c.Status(), c.Events())
		}
	}
	m, ok := h.Recorder().Metric(t, "billing.invoices")
	if !ok {
		t.Fatal("no billing.invoices metric")
	}
	var total int64
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		total += dp.Value
	}
	if total != 3 {
		t.Errorf("billing.invoices = %d, want 3", total)
	}

	// Log lines written in handlers carry the trace id of their span.
	if !strings.Contains(s.logs.String(), "billing issued invoice") || !strings.Contains(s.logs.String(), "trace_id=") {
		t.Errorf("handler logs lack trace ids:\n%s", s.logs.String())
	}
}

// Shipping consumes invoices in batches: its process span links to the
// send span of every invoice it consumed, each in its order's trace, and
// its baggage is the invoices' merged.
func TestShippingBatchLinksEveryTrace(t *testing.T) {
	h := testutil.NewHarness(t) // asynchronous: invoices gather into batches
	s := wire(t, h)
	if err := placeOrders(t.Context(), s.checkout, 4); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(time.Minute)
	for s.shipped.Load() < 3 {
		select {
		case <-s.batches:
		case <-deadline:
			t.Fatalf("shipped %d of 3 invoices", s.shipped.Load())
		}
	}
	testutil.Eventually(t, time.Minute, func() bool { return s.billing.Rejected() == 1 }, "the invalid order was not dead-lettered")
	spans := waitSpans(t, h, "process "+invoicesTopic)

	sends := testutil.SpansNamed(spans, "send "+invoicesTopic)
	if len(sends) != 3 {
		t.Fatalf("%d invoice sends, want 3", len(sends))
	}
	batches := testutil.SpansNamed(spans, "process "+invoicesTopic)
	for _, send := range sends {
		linked := 0
		for _, b := range batches {
			if testutil.LinksTo(b, send) {
				linked++
			}
		}
		if linked != 1 {
			t.Errorf("invoice send in trace %s is linked by %d batch spans, want 1", send.SpanContext().TraceID(), linked)
		}
	}
	if !strings.Contains(s.logs.String(), "tenant=acme") || !strings.Contains(s.logs.String(), "last_invoice=inv-") {
		t.Errorf("shipping did not see the merged baggage:\n%s", s.logs.String())
	}
	if strings.Contains(s.logs.String(), "session.id") {
		t.Errorf("billing's removal of session.id did not travel")
	}
}

// waitSpans waits until every delivery's span has ended: a batch handler
// returns before its process span ends.
func waitSpans(t *testing.T, h *testutil.Harness, name string) []sdktrace.ReadOnlySpan {
	t.Helper()
	var spans []sdktrace.ReadOnlySpan
	testutil.Eventually(t, time.Minute, func() bool {
		spans = h.Recorder().Spans()
		linked := 0
		for _, b := range testutil.SpansNamed(spans, name) {
			linked += len(b.Links())
		}
		return linked >= 3
	}, "batch spans did not end")
	return spans
}

func inTrace(spans []sdktrace.ReadOnlySpan, id trace.TraceID) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.SpanContext().TraceID() == id {
			out = append(out, s)
		}
	}
	return out
}

func spanNames(spans []sdktrace.ReadOnlySpan) map[string]bool {
	names := map[string]bool{}
	for _, s := range spans {
		names[s.Name()] = true
	}
	return names
}

func hasParentIn(s sdktrace.ReadOnlySpan, spans []sdktrace.ReadOnlySpan) bool {
	for _, p := range spans {
		if testutil.IsChildOf(s, p) {
			return true
		}
	}
	return false
}

// orderOf returns the order id recorded on the trace's send span.
func orderOf(t *testing.T, spans []sdktrace.ReadOnlySpan) string {
	t.Helper()
	for _, s := range spans {
		if s.Name() == "process "+ordersPattern {
			for _, kv := range s.Attributes() {
				// Every message has an id; an order's own id only when
				// the publisher set it.
				if id := kv.Value.AsString(); kv.Key == "messaging.message.id" && strings.HasPrefix(id, "order-") {
					return id
				}
			}
		}
	}
	for _, s := range spans {
		if s.Name() == "charge card" {
			for _, e := range s.Events() {
				for _, kv := range e.Attributes {
					if kv.Key == "payment.auth_code" {
						return "order-" + strings.TrimPrefix(kv.Value.AsString(), "A")
					}
				}
			}
		}
	}
	if spanNames(spans)["send "+deadOrders] {
		return "order-3"
	}
	return "?"
}

func errorType(s sdktrace.ReadOnlySpan) string {
	for _, kv := range s.Attributes() {
		if kv.Key == attribute.Key("error.type") {
			return kv.Value.AsString()
		}
	}
	return ""
}

// The dead-letter consumer logs which order was rejected, why and where
// it failed, never the order's body (customer data).
func TestDeadLetterLogHasNoBody(t *testing.T) {
	h := testutil.NewHarness(t, testutil.WithSyncDelivery())
	s := wire(t, h)
	if err := placeOrders(t.Context(), s.checkout, invalidOrder); err != nil {
		t.Fatal(err)
	}
	var line string
	for l := range strings.Lines(s.logs.String()) {
		if strings.Contains(l, `msg="billing rejected order"`) {
			line = l
		}
	}
	for _, want := range []string{"order=order-3", "destination=" + ordersSubject, "quantity 0"} {
		if !strings.Contains(line, want) {
			t.Errorf("the dead-letter log line lacks %s: %q\nlogs:\n%s", want, line, s.logs.String())
		}
	}
	for _, body := range []string{"c-43", "sku", "book"} { // the order's customer and item
		if strings.Contains(line, body) {
			t.Errorf("the dead-letter log line carries the order's body (%s): %q", body, line)
		}
	}
}
