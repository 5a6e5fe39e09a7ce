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
	if got := eu.Prefix(); got != "orders.eu." {
		t.Fatalf("nested prefix %q", got)
	}
	if eu.Broker() != b {
		t.Fatal("a nested router registers on another broker")
	}

	got := make(chan order, 2)
	must(t, broker.Handle(orders, "created", func(_ context.Context, o order) error { got <- o; return nil }))
	must(t, broker.Handle(eu, "created", func(_ context.Context, o order) error { got <- o; return nil },
		broker.Group("eu-billing"), broker.Use(recordingMiddleware("sub", &mu, &log))))
	must(t, eu.Subscribe("raw", noop))
	pub := broker.NewPublisher[order](eu, "created")
	if d := pub.Destination(); d != "orders.eu.created" {
		t.Fatalf("publisher destination %q", d)
	}
	if err := orders.Subscribe("", noop); !errors.Is(err, broker.ErrEmptyDestination) {
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
	r := broker.NewRouter(b, "jobs-", broker.MaxAttempts(2), broker.WithBackoff(broker.ConstantBackoff(0)), broker.DeadLetter("dead"))
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
