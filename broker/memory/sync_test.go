package memory_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/memory"
)

// syncBroker returns a started broker on srv, closed with the test.
func syncBroker(t *testing.T, srv *memory.Server) *broker.Broker {
	t.Helper()
	tr, err := memory.New(memory.WithServer(srv))
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(tr, broker.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return b
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func publishBody(t *testing.T, b *broker.Broker, dest, body string) {
	t.Helper()
	mustOK(t, b.Publish(context.Background(), &broker.Message{Destination: dest, Body: []byte(body)}))
}

// Publish returns after the handler and the handler of what it published
// have run: the test reads plain variables, no wait.
func TestSyncDeliveryCascade(t *testing.T) {
	srv := memory.NewServer(memory.WithSyncDelivery())
	in, out := syncBroker(t, srv), syncBroker(t, srv)
	var got []string
	mustOK(t, in.Subscribe("orders.*", func(ctx context.Context, m *broker.Message) error {
		got = append(got, "order "+string(m.Body))
		return in.Publish(ctx, &broker.Message{Destination: "invoices", Body: m.Body})
	}))
	mustOK(t, out.Subscribe("invoices", func(_ context.Context, m *broker.Message) error {
		got = append(got, "invoice "+string(m.Body))
		return nil
	}))
	publishBody(t, out, "orders.eu", "1")
	publishBody(t, out, "orders.us", "2")
	want := []string{"order 1", "invoice 1", "order 2", "invoice 2"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// Retries with an hour of backoff still end within Publish: the delay is
// not waited for, MaxAttempts counts, and the dead letter is published.
func TestSyncDeliveryRetriesEnd(t *testing.T) {
	srv := memory.NewServer(memory.WithSyncDelivery(), memory.WithRecording())
	b := syncBroker(t, srv)
	var attempts []int
	mustOK(t, b.Subscribe("jobs", func(_ context.Context, m *broker.Message) error {
		attempts = append(attempts, m.Delivery.DeliveryCount)
		return errors.New("boom")
	}, broker.MaxAttempts(3), broker.RetryBackoff(broker.ConstantBackoff(time.Hour)), broker.DeadLetter("jobs.dead")))
	publishBody(t, b, "jobs", "j")
	if !slices.Equal(attempts, []int{1, 2, 3}) {
		t.Errorf("attempts %v, want [1 2 3]", attempts)
	}
	dead := publishedTo(srv, "jobs.dead")
	if len(dead) != 1 || dead[0].Headers.Get(broker.HeaderDeadLetterOrigin) != "jobs" {
		t.Errorf("dead letters: %+v", dead)
	}
}

// A handler that never settles for good, or publishes to its own
// destination forever, makes Publish fail instead of hanging.
func TestSyncDeliveryLoopsEnd(t *testing.T) {
	t.Run("nak forever", func(t *testing.T) {
		b := syncBroker(t, memory.NewServer(memory.WithSyncDelivery()))
		calls := 0
		mustOK(t, b.Subscribe("jobs", func(ctx context.Context, _ *broker.Message) error {
			calls++
			return broker.SettlerFromContext(ctx).Nak(ctx, time.Hour)
		}, broker.ManualAck()))
		err := b.Publish(context.Background(), &broker.Message{Destination: "jobs"})
		if !errors.Is(err, memory.ErrSyncLoop) || calls != 100 { // the documented limit
			t.Errorf("err %v after %d calls, want ErrSyncLoop after 100", err, calls)
		}
	})
	t.Run("publish to itself", func(t *testing.T) {
		b := syncBroker(t, memory.NewServer(memory.WithSyncDelivery()))
		calls := 0
		mustOK(t, b.Subscribe("echo", func(ctx context.Context, m *broker.Message) error {
			calls++
			return b.Publish(ctx, &broker.Message{Destination: "echo"})
		}))
		err := b.Publish(context.Background(), &broker.Message{Destination: "echo"})
		if !errors.Is(err, memory.ErrSyncLoop) || calls != 64 { // the documented limit
			t.Errorf("err %v after %d nested calls; want ErrSyncLoop after 64", err, calls)
		}
		if want := "in the loop echo → echo:"; !strings.Contains(fmt.Sprint(err), want) {
			t.Errorf("err %q does not name the loop %q", err, want)
		}
	})
	// A dead-letter destination inside the subscription's own pattern is
	// refused at Subscribe; a loop through another subscription (one that
	// re-drives dead letters) can only be seen when it happens. Every
	// level that fails retries, and each retry would loop again: the
	// first bound exceeded stops the whole cascade instead, and the error
	// names the destinations of the loop.
	t.Run("dead letters come back", func(t *testing.T) {
		b := syncBroker(t, memory.NewServer(memory.WithSyncDelivery()))
		err := broker.Handle(b, "orders.*", func(context.Context, int) error { return nil }, broker.DeadLetter("orders.dead"))
		if !errors.Is(err, broker.ErrInvalid) {
			t.Fatalf("subscribe with a dead-letter destination of its own pattern: %v", err)
		}
		calls := 0
		mustOK(t, broker.Handle(b, "orders.*", func(context.Context, int) error {
			calls++
			return nil
		}, broker.DeadLetter("dlq.orders")))
		mustOK(t, b.Subscribe("dlq.orders", func(ctx context.Context, m *broker.Message) error {
			return b.Publish(ctx, &broker.Message{Destination: "orders.retry", Body: m.Body})
		}))
		err = b.Publish(context.Background(), &broker.Message{Destination: "orders.eu", Body: []byte("{")})
		if !errors.Is(err, memory.ErrSyncLoop) || calls != 0 {
			t.Errorf("err %v, %d calls; want ErrSyncLoop and no call", err, calls)
		}
		if want := "in the loop orders.* → dlq.orders → orders.retry → orders.*:"; !strings.Contains(fmt.Sprint(err), want) {
			t.Errorf("err %q does not name the loop %q", err, want)
		}
	})
}

// The messages of one PublishBatch form batches of up to BatchSize at
// once; a group shares messages round-robin.
func TestSyncDeliveryBatchesAndGroups(t *testing.T) {
	srv := memory.NewServer(memory.WithSyncDelivery())
	b := syncBroker(t, srv)
	var sizes []int
	mustOK(t, b.SubscribeBatch("events", func(_ context.Context, msgs []*broker.Message) error {
		sizes = append(sizes, len(msgs))
		return nil
	}, broker.Batch(2, time.Hour)))
	perMember := map[string]int{}
	for _, name := range []string{"a", "b"} {
		mustOK(t, syncBroker(t, srv).Subscribe("events", func(context.Context, *broker.Message) error {
			perMember[name]++
			return nil
		}, broker.Group("workers")))
	}
	msgs := make([]*broker.Message, 5)
	for i := range msgs {
		msgs[i] = &broker.Message{Destination: "events", Body: fmt.Appendf(nil, "%d", i)}
	}
	mustOK(t, b.PublishBatch(context.Background(), msgs))
	publishBody(t, b, "events", "5")
	if !slices.Equal(sizes, []int{2, 2, 1, 1}) {
		t.Errorf("batch sizes %v, want [2 2 1 1]", sizes)
	}
	if perMember["a"] != 3 || perMember["b"] != 3 {
		t.Errorf("group members got %v, want 3 each", perMember)
	}
}

// A NATS-style request: the requester listens on a reply subject and
// publishes with ReplyTo; a HandleResult responder answers there. With
// synchronous delivery the reply has arrived when Publish returns.
func TestSyncDeliveryReplyTo(t *testing.T) {
	srv := memory.NewServer(memory.WithSyncDelivery())
	requester, responder := syncBroker(t, srv), syncBroker(t, srv)
	mustOK(t, broker.HandleResult(responder, "prices.get", func(_ context.Context, sku string) (int, error) {
		return len(sku) * 100, nil
	}))
	var reply int
	mustOK(t, broker.Handle(requester, "_INBOX.r1", func(_ context.Context, v int) error {
		reply = v
		return nil
	}))
	req := &broker.Message{Destination: "prices.get", Body: []byte(`"abc"`), ReplyTo: "_INBOX.r1"}
	mustOK(t, requester.Publish(context.Background(), req))
	if reply != 300 {
		t.Errorf("reply %d, want 300", reply)
	}
}

// A recording server keeps every message, matched or not, in order, and
// hands out copies.
func TestRecording(t *testing.T) {
	for _, opts := range [][]memory.ServerOption{
		{memory.WithRecording()},
		{memory.WithRecording(), memory.WithSyncDelivery()},
	} {
		srv := memory.NewServer(opts...)
		b := syncBroker(t, srv)
		publishBody(t, b, "a", "1")
		publishBody(t, b, "b", "2")
		publishBody(t, b, "a", "3")
		var all []string
		for _, m := range srv.Published() {
			all = append(all, fmt.Sprintf("%s:%s#%d", m.Destination, m.Body, m.Delivery.Sequence))
		}
		if want := []string{"a:1#1", "b:2#1", "a:3#2"}; !slices.Equal(all, want) {
			t.Errorf("published %q, want %q", all, want)
		}
		toA := publishedTo(srv, "a")
		if len(toA) != 2 || string(toA[1].Body) != "3" {
			t.Fatalf("published to a: %+v", toA)
		}
		toA[0].Body[0] = 'x'
		if got := publishedTo(srv, "a")[0].Body; string(got) != "1" {
			t.Errorf("the record changed through a copy: %q", got)
		}
	}
	if got := memory.NewServer().Published(); got != nil {
		t.Errorf("a server without WithRecording recorded %v", got)
	}
}

// publishedTo is what srv recorded for exactly destination.
func publishedTo(srv *memory.Server, destination string) []*broker.Message {
	var out []*broker.Message
	for _, m := range srv.Published() {
		if m.Destination == destination {
			out = append(out, m)
		}
	}
	return out
}
