package broker_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/memory"
	"github.com/tracebus/tracebus/testutil"
)

type invoice struct {
	Order string `json:"order"`
}

// A dead-letter or PublishTo destination that the subscription's own
// pattern matches would deliver every dead letter or result back to the
// handler, for ever: whatever registers the subscription refuses it with
// an error naming the pattern and the destination. Destinations outside
// the pattern, and publishers on a system the subscription does not see,
// are accepted.
func TestSubscribeRefusesLoops(t *testing.T) {
	onOrder := func(context.Context, order) error { return nil }
	onOrders := func(context.Context, []order) error { return nil }
	invoiceOf := func(_ context.Context, o order) (invoice, error) { return invoice{Order: o.ID}, nil }
	register := map[string]func(r broker.Registrar, dest string, opts ...broker.SubscribeOption) error{
		"Subscribe": func(r broker.Registrar, dest string, opts ...broker.SubscribeOption) error {
			return r.(*broker.Broker).Subscribe(dest, noop, opts...)
		},
		"SubscribeBatch": func(r broker.Registrar, dest string, opts ...broker.SubscribeOption) error {
			return r.(*broker.Broker).SubscribeBatch(dest, func(context.Context, []*broker.Message) error { return nil }, opts...)
		},
		"Handle": func(r broker.Registrar, dest string, opts ...broker.SubscribeOption) error {
			return broker.Handle(r, dest, onOrder, opts...)
		},
		"HandleBatch": func(r broker.Registrar, dest string, opts ...broker.SubscribeOption) error {
			return broker.HandleBatch(r, dest, onOrders, opts...)
		},
		"HandleResult": func(r broker.Registrar, dest string, opts ...broker.SubscribeOption) error {
			ropts := make([]broker.ResultOption, len(opts))
			for i, o := range opts {
				ropts[i] = o
			}
			return broker.HandleResult(r, dest, invoiceOf, ropts...)
		},
	}
	deadLetters := []struct {
		pattern, deadLetter string
		loops               bool
	}{
		{"orders.*", "orders.rejected", true}, // the README's first draft
		{"orders.>", "orders.eu.rejected", true},
		{">", "dlq", true},
		{"*", "dlq", true},
		{"orders", "orders", true},
		{"orders.*", "dlq.orders", false},
		{"orders.*", "orders.eu.rejected", false},
		{"*", "dlq.orders", false},
		{"orders-in", "orders-in-dlq", false}, // Kafka topics: equality
	}
	for name, reg := range register {
		for _, tc := range deadLetters {
			b := broker.New(testutil.Memory(t))
			err := reg(b, tc.pattern, broker.DeadLetter(tc.deadLetter))
			if !tc.loops {
				if err != nil {
					t.Errorf("%s(%q, DeadLetter(%q)): %v", name, tc.pattern, tc.deadLetter, err)
				}
				continue
			}
			assertLoopError(t, err, tc.pattern, tc.deadLetter)
			if n := len(b.Endpoints()); n != 0 {
				t.Errorf("%s(%q, DeadLetter(%q)) failed but registered %d endpoints", name, tc.pattern, tc.deadLetter, n)
			}
		}
	}

	t.Run("router", func(t *testing.T) {
		b := broker.New(testutil.Memory(t))
		orders := broker.NewRouter(b, "orders.")
		// The router's prefix applies to the subscription, not to the
		// dead-letter destination, which is used as given.
		assertLoopError(t, orders.Subscribe("*", noop, broker.DeadLetter("orders.rejected")), "orders.*", "orders.rejected")
		must(t, orders.Subscribe("*", noop, broker.DeadLetter("rejected")))
		// A dead-letter destination shared through the router's options.
		shared := broker.NewRouter(orders, "eu.", broker.DeadLetter("orders.eu.dead"))
		assertLoopError(t, broker.Handle(shared, ">", onOrder), "orders.eu.>", "orders.eu.dead")
		must(t, broker.Handle(shared, "created", onOrder))
	})

	t.Run("PublishTo", func(t *testing.T) {
		srv := memory.NewServer()
		on := func(srv *memory.Server) *broker.Broker {
			return broker.New(testutil.Memory(t, memory.WithServer(srv)))
		}
		b := on(srv)
		// A publisher of the same broker, directly or under a router.
		assertLoopError(t, broker.HandleResult(b, "orders.*", invoiceOf,
			broker.PublishTo(broker.Must(broker.NewPublisher[invoice](b, "orders.invoiced")))), "orders.*", "orders.invoiced")
		r := broker.NewRouter(b, "orders.")
		assertLoopError(t, broker.HandleResult(r, "*", invoiceOf,
			broker.PublishTo(broker.Must(broker.NewPublisher[invoice](r, "invoiced")))), "orders.*", "orders.invoiced")
		// Another broker on the same server sees the same subjects.
		assertLoopError(t, broker.HandleResult(b, "orders.*", invoiceOf,
			broker.PublishTo(broker.Must(broker.NewPublisher[invoice](on(srv), "orders.invoiced")))), "orders.*", "orders.invoiced")
		// A broker on another server does not: the same name there is
		// another destination.
		must(t, broker.HandleResult(b, "orders.*", invoiceOf,
			broker.PublishTo(broker.Must(broker.NewPublisher[invoice](on(memory.NewServer()), "orders.invoiced")))))
		must(t, broker.HandleResult(b, "orders.*", invoiceOf,
			broker.PublishTo(broker.Must(broker.NewPublisher[invoice](b, "invoices.new")))))
	})
}

func assertLoopError(t *testing.T, err error, pattern, dest string) {
	t.Helper()
	if !errors.Is(err, broker.ErrInvalid) {
		t.Errorf("subscription %q sending to %q: got %v, want an error wrapping ErrInvalid", pattern, dest, err)
		return
	}
	if msg := err.Error(); !strings.Contains(msg, "subscribe "+pattern+":") || !strings.Contains(msg, "destination "+dest+" ") {
		t.Errorf("error %q does not name the pattern %q and the destination %q", msg, pattern, dest)
	}
}
