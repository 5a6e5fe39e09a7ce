package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/baggage"
	"github.com/tracebus/tracebus/broker"
)

// The services' destinations. Orders and their dead letters live in one
// JetStream stream (orders.>); fraud checks are core NATS request/reply;
// invoices are a Kafka topic keyed by customer.
const (
	ordersSubject  = "orders.created.eu"
	ordersPattern  = "orders.created.*"
	deadOrders     = "orders.dead"
	fraudSubject   = "fraud.check"
	invoicesTopic  = "invoices"
	shippingBatch  = 10
	shippingWindow = 300 * time.Millisecond
)

// Order is what checkout places. Billing validates it before its handler
// runs: an order that does not validate is dead-lettered, never retried.
type Order struct {
	ID       string  `json:"id"`
	Customer string  `json:"customer"`
	SKU      string  `json:"sku"`
	Quantity int     `json:"quantity"`
	Total    float64 `json:"total"`
}

// Validate rejects orders without an id, customer or items.
func (o Order) Validate() error {
	switch {
	case o.ID == "" || o.Customer == "":
		return errors.New("order without id or customer")
	case o.Quantity < 1:
		return fmt.Errorf("quantity %d: must be at least 1", o.Quantity)
	case o.Total <= 0:
		return errors.New("total must be positive")
	}
	return nil
}

// FraudCheck is billing's question to the fraud service.
type FraudCheck struct {
	OrderID  string  `json:"order_id"`
	Customer string  `json:"customer"`
	Amount   float64 `json:"amount"`
}

// Verdict is the fraud service's answer.
type Verdict struct {
	OrderID  string  `json:"order_id"`
	Approved bool    `json:"approved"`
	Score    float64 `json:"score"`
}

// Invoice is what billing returns for an approved order; it goes to Kafka.
type Invoice struct {
	OrderID  string  `json:"order_id"`
	Customer string  `json:"customer"`
	Amount   float64 `json:"amount"`
}

// Checkout places orders: each one is a request of its own (a SERVER span
// standing in for an HTTP handler) that publishes the order with the
// customer's baggage.
type Checkout struct {
	orders *broker.Publisher[Order]
	tracer trace.Tracer
	log    *slog.Logger
}

// NewCheckout wires checkout's publisher on b.
func NewCheckout(b broker.Registrar, tp trace.TracerProvider, log *slog.Logger) *Checkout {
	return &Checkout{
		orders: broker.Must(broker.NewPublisher[Order](b, ordersSubject,
			broker.KeyFunc(func(o Order) string { return o.Customer }),
			broker.Describe("Place orders", "Orders placed at checkout, one per POST /checkout."))),
		tracer: tp.Tracer("example/checkout"),
		log:    log,
	}
}

// Place publishes o as the handler of POST /checkout would.
func (c *Checkout) Place(ctx context.Context, o Order, user, session string) error {
	ctx, err := baggage.ContextWith(ctx, map[string]string{
		"tenant":     "acme",
		"user.id":    user,
		"session.id": session,
	})
	if err != nil {
		return err
	}
	ctx, span := c.tracer.Start(ctx, "POST /checkout", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", "POST"), attribute.String("url.path", "/checkout")))
	defer span.End()
	if err := c.orders.Publish(ctx, o); err != nil {
		span.SetStatus(codes.Error, err.Error())
		return fmt.Errorf("checkout: publish %s: %w", o.ID, err)
	}
	c.log.InfoContext(ctx, "checkout placed order", "order", o.ID, "customer", o.Customer, "total", o.Total)
	return nil
}

// WireFraud registers the fraud service: it answers fraud checks over NATS
// request/reply.
func WireFraud(b broker.Registrar, log *slog.Logger) error {
	return broker.HandleResult(b, fraudSubject, func(ctx context.Context, c FraudCheck) (Verdict, error) {
		score := 0.1
		if c.Amount > 500 {
			score = 0.6
		}
		v := Verdict{OrderID: c.OrderID, Approved: score < 0.5, Score: score}
		log.InfoContext(ctx, "fraud checked order", "order", c.OrderID, "score", score, "approved", v.Approved)
		return v, nil
	}, broker.Group("fraud"), broker.Describe("Score orders", "Scores an order; replies with a verdict."))
}

// Billing turns orders into invoices: it asks the fraud service, charges the
// card (a span of its own with an event), counts invoices, and returns the
// invoice, which goes to Kafka in the same trace.
type Billing struct {
	fraud    *broker.Requester[FraudCheck, Verdict]
	tracer   trace.Tracer
	invoices metric.Int64Counter
	log      *slog.Logger
	// flaky names an order whose first attempt fails with a transient
	// error, to show a retry.
	flaky    string
	attempts atomic.Int32
	rejected atomic.Int32
}

// Rejected returns how many dead-lettered orders billing has seen.
func (bl *Billing) Rejected() int { return int(bl.rejected.Load()) }

// WireBilling registers billing: orders from orders (NATS JetStream), fraud
// checks through orders' NATS connection, invoices to invoicing (Kafka).
func WireBilling(orders, invoicing broker.Registrar, tp trace.TracerProvider, mp metric.MeterProvider, log *slog.Logger, flaky string) (*Billing, error) {
	counter, err := mp.Meter("example/billing").Int64Counter("billing.invoices",
		metric.WithUnit("{invoice}"), metric.WithDescription("Invoices issued, by customer tier."))
	if err != nil {
		return nil, err
	}
	bl := &Billing{
		fraud:    broker.Must(broker.NewRequester[FraudCheck, Verdict](orders, fraudSubject)),
		tracer:   tp.Tracer("example/billing"),
		invoices: counter,
		log:      log,
		flaky:    flaky,
	}
	invoices := broker.Must(broker.NewPublisher[*Invoice](invoicing, invoicesTopic,
		broker.KeyFunc(func(i *Invoice) string { return i.Customer }),
		broker.Describe("Send invoices", "Invoices of approved orders, keyed by customer.")))
	err = broker.HandleResult(orders, ordersPattern, bl.bill,
		broker.Group("billing"), broker.Name("billing"),
		broker.PublishTo(invoices), broker.DeadLetter(deadOrders),
		broker.MaxAttempts(3), broker.RetryBackoff(broker.ConstantBackoff(100*time.Millisecond)),
		broker.Describe("Bill orders", "Bills every order placed in any region."))
	if err != nil {
		return nil, err
	}
	// Dead letters are read as raw JSON: they are the orders that did not
	// validate, and must not be rejected again. The log line names the
	// order, never its body: an order carries customer data, and a log is
	// no place for it.
	err = broker.Handle(orders, deadOrders, func(ctx context.Context, order json.RawMessage) error {
		m := broker.MessageFromContext(ctx)
		bl.rejected.Add(1)
		var ref struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(order, &ref) // a body that is not an order logs no id
		log.WarnContext(ctx, "billing rejected order", "order", ref.ID,
			"reason", m.Headers.Get(broker.HeaderDeadLetterError),
			"destination", m.Headers.Get(broker.HeaderDeadLetterOrigin),
			"attempts", m.Headers.Get(broker.HeaderDeadLetterAttempts))
		return nil
	}, broker.Group("billing-dead-letters"), broker.Describe("Watch billing dead letters", "Orders billing could not take, with the reason."))
	return bl, err
}

func (bl *Billing) bill(ctx context.Context, o Order) (*Invoice, error) {
	msg := broker.MessageFromContext(ctx)
	if o.ID == bl.flaky && bl.attempts.Add(1) == 1 {
		// Transient: ask for the message again shortly.
		return nil, broker.RetryAfter(errors.New("payment provider timeout"), 100*time.Millisecond)
	}
	askCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	verdict, err := bl.fraud.Request(askCtx, FraudCheck{OrderID: o.ID, Customer: o.Customer, Amount: o.Total})
	if err != nil {
		return nil, fmt.Errorf("fraud check: %w", err)
	}
	if !verdict.Approved {
		bl.log.WarnContext(ctx, "billing declined order", "order", o.ID, "score", verdict.Score)
		return nil, nil // nothing to invoice
	}
	if err := bl.charge(ctx, o); err != nil {
		return nil, err
	}
	bag := baggage.FromContext(ctx)
	if err := bag.Set("invoice.id", "inv-"+strings.TrimPrefix(o.ID, "order-")); err != nil {
		return nil, err
	}
	bag.Remove("session.id") // internal to checkout: not forwarded
	bl.invoices.Add(ctx, 1, metric.WithAttributes(attribute.String("customer.tier", tier(o.Total))))
	bl.log.InfoContext(ctx, "billing issued invoice", "order", o.ID, "attempt", msg.Delivery.DeliveryCount,
		"tenant", bag.Get("tenant"))
	return &Invoice{OrderID: o.ID, Customer: o.Customer, Amount: o.Total}, nil
}

// charge is the card payment: a span of the billing service's own, with an
// event and a status, inside the process span.
func (bl *Billing) charge(ctx context.Context, o Order) error {
	_, span := bl.tracer.Start(ctx, "charge card", trace.WithAttributes(
		attribute.String("payment.provider", "acme-pay"), attribute.Float64("payment.amount", o.Total)))
	defer span.End()
	span.AddEvent("card authorised", trace.WithAttributes(attribute.String("payment.auth_code", "A"+strings.TrimPrefix(o.ID, "order-"))))
	span.SetStatus(codes.Ok, "")
	return nil
}

func tier(total float64) string {
	if total >= 100 {
		return "gold"
	}
	return "standard"
}

// WireShipping registers shipping: invoices from Kafka in batches. The
// batch's baggage is the messages' merged, later ones winning; each
// message's own is in Batch().
func WireShipping(b broker.Registrar, log *slog.Logger, shipped func(n int)) error {
	return broker.HandleBatch(b, invoicesTopic, func(ctx context.Context, invoices []Invoice) error {
		bag := baggage.FromContext(ctx)
		ids := make([]string, len(invoices))
		for i, inv := range invoices {
			ids[i] = inv.OrderID
		}
		log.InfoContext(ctx, "shipping batch", "invoices", len(invoices), "orders", strings.Join(ids, ","),
			"tenant", bag.Get("tenant"), "last_invoice", bag.Get("invoice.id"), "baggage_per_message", len(bag.Batch()))
		shipped(len(invoices))
		return nil
	}, broker.Group("shipping"), broker.Batch(shippingBatch, shippingWindow),
		broker.Describe("Ship orders", "Ships invoiced orders in batches."))
}
