package broker_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/testutil"
)

type order struct {
	ID string `json:"id"`
}

// A router puts its prefix in front of every destination registered
// through it (the memory transport, like Kafka, joins as it is), nested
// routers add theirs, and its options are shared, with the subscription's
// own options winning.
func TestRouterPrefixesAndSharedOptions(t *testing.T) {
	var mu sync.Mutex
	var log []string
	b := broker.New(testutil.Memory(t), broker.WithMiddleware(recordingMiddleware("broker", &mu, &log)))
	orders := broker.NewRouter(b, "orders.", broker.Group("billing"), broker.Use(recordingMiddleware("router", &mu, &log)))
	eu := broker.NewRouter(orders, "eu.", broker.Concurrency(2))

	got := make(chan order, 2)
	must(t, broker.Handle(orders, "created", func(_ context.Context, o order) error { got <- o; return nil }))
	must(t, broker.Handle(eu, "created", func(_ context.Context, o order) error { got <- o; return nil },
		broker.Group("eu-billing"), broker.Use(recordingMiddleware("sub", &mu, &log))))
	must(t, eu.Subscribe("raw", noop))
	pub := broker.Must(broker.NewPublisher[order](eu, "created"))
	if err := orders.Subscribe("", noop); !errors.Is(err, broker.ErrInvalid) {
		t.Fatalf("empty destination through a router: %v", err)
	}

	type sub struct{ dest, group string }
	var subs []sub
	for _, e := range b.Endpoints() {
		subs = append(subs, sub{e.Destination, e.Group})
	}
	want := []sub{
		{"orders.created", "billing"},
		{"orders.eu.created", "eu-billing"},
		{"orders.eu.raw", "billing"},
		{"orders.eu.created", ""}, // the publisher
	}
	if !slices.Equal(subs, want) {
		t.Fatalf("endpoints:\n got %v\nwant %v", subs, want)
	}

	must(t, b.Start(t.Context()))
	defer func() { must(t, b.Close(t.Context())) }()
	must(t, pub.Publish(t.Context(), order{ID: "1"}))
	select {
	case o := <-got:
		if o.ID != "1" {
			t.Fatalf("got %+v", o)
		}
	case <-time.After(time.Minute):
		t.Fatal("the nested router's handler got nothing")
	}
	if len(got) != 0 {
		t.Fatal("the parent router's handler got a message of the nested one")
	}
	// Router middleware is inside the broker's and outside the
	// subscription's own.
	wantLog := []string{"broker:publish:publish", "broker:consume", "router:consume", "sub:consume"}
	testutil.Eventually(t, time.Minute, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(log) >= len(wantLog)
	}, "the middleware did not run")
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(log[:len(wantLog)], wantLog) {
		t.Fatalf("middleware order:\n got %q\nwant %q", log, wantLog)
	}
}

// The router's shared retry options apply to its subscriptions.
func TestRouterSharedRetryPolicy(t *testing.T) {
	b := broker.New(testutil.Memory(t), broker.WithLogger(discardLogger()))
	r := broker.NewRouter(b, "jobs-", broker.MaxAttempts(2), broker.RetryBackoff(broker.ConstantBackoff(0)), broker.DeadLetter("dead"))
	var attempts sync.Map
	must(t, r.Subscribe("fail", func(_ context.Context, m *broker.Message) error {
		n, _ := attempts.LoadOrStore(string(m.Body), new(int))
		*n.(*int)++
		return errors.New("always")
	}))
	dead := make(chan *broker.Message, 1)
	must(t, b.Subscribe("dead", func(_ context.Context, m *broker.Message) error { dead <- m; return nil }))
	must(t, b.Start(t.Context()))
	defer func() { must(t, b.Close(t.Context())) }()
	must(t, b.Publish(t.Context(), &broker.Message{Destination: "jobs-fail", Body: []byte("a")}))
	select {
	case m := <-dead:
		if got := m.Headers.Get(broker.HeaderDeadLetterAttempts); got != "2" {
			t.Fatalf("dead-lettered after %s attempts, want 2 (the router's MaxAttempts)", got)
		}
		if got := m.Headers.Get(broker.HeaderDeadLetterOrigin); got != "jobs-fail" {
			t.Fatalf("origin %q", got)
		}
	case <-time.After(time.Minute):
		t.Fatal("nothing dead-lettered to the router's dead-letter destination")
	}
}

// FastStream's router prefix tests (tests/brokers/base/router.py and
// include_router.py), on the memory transport: a message published to
// publish must reach the handler marked "done", and every registration
// must end up under the right prefix, nested and empty prefixes included.
func TestRouterPrefixes(t *testing.T) {
	type wiring struct {
		b    *broker.Broker
		done func(context.Context, string) error // the handler the message must reach
	}
	echo := func(_ context.Context, s string) (string, error) { return s, nil }
	tests := []struct {
		name    string
		wire    func(t *testing.T, w wiring)
		publish string
		want    []string // endpoint destinations, in registration order
	}{{
		name:    "empty prefix",
		wire:    func(t *testing.T, w wiring) { must(t, broker.Handle(broker.NewRouter(w.b, ""), "q", w.done)) },
		publish: "q",
		want:    []string{"q"},
	}, {
		name:    "not empty prefix",
		wire:    func(t *testing.T, w wiring) { must(t, broker.Handle(broker.NewRouter(w.b, "test_"), "q", w.done)) },
		publish: "test_q",
		want:    []string{"test_q"},
	}, {
		name: "empty prefix under a prefix", // include_router(router, prefix="test_")
		wire: func(t *testing.T, w wiring) {
			must(t, broker.Handle(broker.NewRouter(broker.NewRouter(w.b, "test_"), ""), "q", w.done))
		},
		publish: "test_q",
		want:    []string{"test_q"},
	}, {
		name: "prefix under an empty prefix",
		wire: func(t *testing.T, w wiring) {
			must(t, broker.Handle(broker.NewRouter(broker.NewRouter(w.b, ""), "test_"), "q", w.done))
		},
		publish: "test_q",
		want:    []string{"test_q"},
	}, {
		name: "nested routers",
		wire: func(t *testing.T, w wiring) {
			must(t, broker.Handle(broker.NewRouter(broker.NewRouter(w.b, "test1_"), "test2_"), "q", w.done))
		},
		publish: "test1_test2_q",
		want:    []string{"test1_test2_q"},
	}, {
		name: "complex prefix", // 1. / "" / 4. / 5.
		wire: func(t *testing.T, w wiring) {
			r1 := broker.NewRouter(w.b, "1.")
			r2 := broker.NewRouter(r1, "")
			r3 := broker.NewRouter(broker.NewRouter(r2, "4."), "5.")
			must(t, r2.Subscribe("test", noop))
			must(t, broker.Handle(r3, "test", w.done))
		},
		publish: "1.4.5.test",
		want:    []string{"1.test", "1.4.5.test"},
	}, {
		name: "empty prefix publisher",
		wire: func(t *testing.T, w wiring) {
			r := broker.NewRouter(w.b, "")
			must(t, broker.HandleResult(r, "q", echo, broker.PublishTo(broker.Must(broker.NewPublisher[string](r, "qresp")))))
			must(t, broker.Handle(r, "qresp", w.done))
		},
		publish: "q",
		want:    []string{"qresp", "q", "qresp"},
	}, {
		name: "not empty prefix publisher",
		wire: func(t *testing.T, w wiring) {
			r := broker.NewRouter(w.b, "test_")
			must(t, broker.HandleResult(r, "q", echo, broker.PublishTo(broker.Must(broker.NewPublisher[string](r, "qresp")))))
			must(t, broker.Handle(r, "qresp", w.done))
		},
		publish: "test_q",
		want:    []string{"test_qresp", "test_q", "test_qresp"},
	}, {
		name: "publisher under an empty prefix under a prefix", // include_publisher_with_prefix
		wire: func(t *testing.T, w wiring) {
			pub := broker.Must(broker.NewPublisher[string](broker.NewRouter(broker.NewRouter(w.b, "test_"), ""), "q"))
			must(t, broker.Handle(w.b, "test_q", w.done))
			must(t, broker.Handle(w.b, "start", func(ctx context.Context, s string) error { return pub.Publish(ctx, s) }))
		},
		publish: "start",
		want:    []string{"test_q", "test_q", "start"},
	}, {
		name: "manual publisher",
		wire: func(t *testing.T, w wiring) {
			r := broker.NewRouter(w.b, "test_")
			pub := broker.Must(broker.NewPublisher[string](r, "qresp"))
			must(t, broker.Handle(r, "q", func(ctx context.Context, s string) error { return pub.Publish(ctx, s) }))
			must(t, broker.Handle(r, "qresp", w.done))
		},
		publish: "test_q",
		want:    []string{"test_qresp", "test_q", "test_qresp"},
	}, {
		name: "nested routers publisher",
		wire: func(t *testing.T, w wiring) {
			r := broker.NewRouter(broker.NewRouter(w.b, "test1_"), "test2_")
			must(t, broker.HandleResult(r, "q", echo, broker.PublishTo(broker.Must(broker.NewPublisher[string](r, "qresp")))))
			must(t, broker.Handle(w.b, "test1_test2_qresp", w.done))
		},
		publish: "test1_test2_q",
		want:    []string{"test1_test2_qresp", "test1_test2_q", "test1_test2_qresp"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := testutil.NewHarness(t, testutil.WithSyncDelivery())
			b := h.Broker()
			var got []string
			tc.wire(t, wiring{b: b, done: func(_ context.Context, s string) error {
				got = append(got, s)
				return nil
			}})
			var dests []string
			for _, e := range b.Endpoints() {
				dests = append(dests, e.Destination)
			}
			if !slices.Equal(dests, tc.want) {
				t.Errorf("endpoints %q, want %q", dests, tc.want)
			}
			must(t, b.Publish(t.Context(), &broker.Message{Destination: tc.publish, Body: []byte(`"hello"`)}))
			if !slices.Equal(got, []string{"hello"}) {
				t.Errorf("publishing to %s reached the handler with %q, want [hello]", tc.publish, got)
			}
		})
	}
}
