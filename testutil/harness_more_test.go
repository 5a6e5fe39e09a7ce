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

// Batches and retries run to their end within Publish: a batch handler
// gets the messages of one PublishBatch at once, and a failing handler is
// retried MaxAttempts times without waiting its hour of backoff, then
// dead-lettered.
func TestHarnessBatchesAndRetries(t *testing.T) {
	h := testutil.NewHarness(t, testutil.Synchronous())
	b := h.Broker()
	var sums []int
	must(t, broker.HandleBatch(b, "amounts", func(_ context.Context, vs []int) error {
		sums = append(sums, len(vs))
		return nil
	}, broker.BatchSize(3)))
	must(t, broker.Handle(b, "jobs", func(context.Context, string) error {
		return errors.New("busy")
	}, broker.MaxAttempts(3), broker.WithBackoff(broker.ConstantBackoff(time.Hour)), broker.DeadLetter("jobs.dead")))

	ctx := context.Background()
	must(t, broker.NewPublisher[int](b, "amounts").PublishBatch(ctx, []int{1, 2, 3, 4}))
	must(t, broker.NewPublisher[string](b, "jobs").Publish(ctx, "j-1"))

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
// arrived when Publish returns, and the four hops form one trace.
func TestHarnessReplyTo(t *testing.T) {
	h := testutil.NewHarness(t, testutil.Synchronous())
	client, server := h.Broker(), h.Broker()
	must(t, broker.HandleResult(server, "prices.get", func(_ context.Context, sku string) (int, error) {
		return 100 * len(sku), nil
	}))
	var price int
	must(t, broker.Handle(client, "_INBOX.client-1", func(_ context.Context, v int) error {
		price = v
		return nil
	}))
	req, err := broker.NewPublisher[string](client, "prices.get").Message("abc")
	must(t, err)
	req.ReplyTo = "_INBOX.client-1"
	must(t, client.Publish(context.Background(), req))

	if price != 300 {
		t.Errorf("reply %d, want 300", price)
	}
	testutil.AssertPublishedOne(t, h, "_INBOX.client-1", 300)
	h.AssertSpanTree(t, `
		send prices.get (producer)
		  process prices.get (consumer)
		    send _INBOX.client-1 (producer)
		      process _INBOX.client-1 (consumer)
	`)
}

// Without Synchronous the brokers deliver asynchronously, as the memory
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
	must(t, broker.NewPublisher[string](b, "pings").Publish(context.Background(), "ping"))
	if got := testutil.Published[string](t, h, "pings"); !slices.Equal(got, []string{"ping"}) {
		t.Errorf("published %v", got)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not run")
	}
	if _, ok := h.Recorder().Metric(t, "messaging.client.sent.messages"); !ok {
		t.Error("no messaging.client.sent.messages metric recorded")
	}
}

// A service whose wiring runs its brokers in a broker.App gets unstarted
// brokers and starts the App itself.
func TestHarnessWithApp(t *testing.T) {
	h := testutil.NewHarness(t, testutil.Synchronous(), testutil.WithoutStart())
	nats, kafka := h.Broker(), h.Broker()
	must(t, wireBilling(nats, kafka))
	app := broker.NewApp(broker.WithBrokers(nats, kafka))
	ctx := context.Background()
	must(t, app.Start(ctx))
	t.Cleanup(func() { must(t, app.Stop(ctx)) })

	must(t, broker.NewPublisher[Order](nats, "orders.eu").Publish(ctx, Order{ID: "7", Quantity: 1}))
	testutil.AssertPublishedOne(t, h, "invoices", Invoice{OrderID: "7", Amount: 5}, testutil.Key("7"))
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
	h := testutil.NewHarness(t, testutil.Synchronous(),
		testutil.WithBrokerOptions(broker.WithCodec(upperCodec{})),
		testutil.WithTelemetryOptions(middleware.WithSettleSpans()),
		testutil.DecodeWith(upperCodec{}))
	b := h.Broker()
	must(t, broker.Handle(b, "greetings", func(context.Context, string) error { return nil }))
	must(t, broker.NewPublisher[string](b, "greetings").Publish(context.Background(), "hello"))

	if body := string(h.Published("greetings")[0].Body); body != "HELLO" {
		t.Errorf("body %q, want the service codec's HELLO", body)
	}
	testutil.AssertPublishedOne(t, h, "greetings", "hello", testutil.Header(broker.HeaderContentType, "text/x-upper"))
	testutil.AssertHandledOnce(t, h, "greetings", "hello")
	h.AssertSpanTree(t, `
		send greetings (producer)
		  process greetings (consumer)
		    ack greetings (client)
	`)
}
