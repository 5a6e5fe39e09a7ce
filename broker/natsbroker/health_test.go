package natsbroker_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/codec"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// Ping follows the connection: a round trip while connected, an error
// matching broker.ErrUnavailable while the server is away, and
// broker.ErrClosed once the transport is closed. An app's readiness follows
// it, over HTTP.
func TestPingAndReadiness(t *testing.T) {
	srv := natstest.New(t)
	tr := connect(t, srv)
	must(t, tr.Ping(t.Context()))
	app := broker.NewApp(broker.WithBrokers(broker.New(tr)))
	must(t, app.Start(t.Context()))
	h := httptest.NewServer(app.HealthHandler())
	defer h.Close()
	readyz := func() int {
		res, err := http.Get(h.URL + "/readyz")
		must(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	if code := readyz(); code != http.StatusOK {
		t.Fatalf("ready while connected: %d", code)
	}

	must(t, srv.Stop())
	testutil.Eventually(t, wait, func() bool { return errors.Is(tr.Ping(t.Context()), broker.ErrUnavailable) },
		"ping did not notice the server went away")
	if code := readyz(); code != http.StatusServiceUnavailable {
		t.Fatalf("ready while the server is away: %d", code)
	}
	if err := app.Live(); err != nil {
		t.Fatalf("live while the server is away: %v", err)
	}

	must(t, srv.StartAgain())
	testutil.Eventually(t, wait, func() bool { return readyz() == http.StatusOK }, "not ready again after the server came back")

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	must(t, app.Stop(ctx))
	if err := tr.Ping(t.Context()); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("ping after close: %v, want ErrClosed", err)
	}
}

// A router on NATS joins its prefix and each subject with a dot; a prefix
// that ends with one is used as it is.
func TestRouterJoinsSubjectsWithDots(t *testing.T) {
	srv := natstest.New(t)
	got := testkit.NewInbox[*broker.Message](wait)
	b := started(t, connect(t, srv), func(b *broker.Broker) {
		orders := broker.NewRouter(b, "orders")
		must(t, orders.Subscribe("created", collect(got)))
		must(t, broker.NewRouter(orders, "eu.").Subscribe("*", collect(got)))
	})
	r := broker.NewRouter(b, "orders")
	pub := broker.Must(broker.NewPublisher[string](broker.NewRouter(r, "eu"), "shipped", broker.Codec(codec.Text)))
	var dests []string
	for _, e := range b.Endpoints() {
		dests = append(dests, e.Destination)
	}
	if want := []string{"orders.created", "orders.eu.*", "orders.eu.shipped"}; !slices.Equal(dests, want) {
		t.Fatalf("endpoints %q, want %q", dests, want)
	}
	must(t, b.Publish(t.Context(), &broker.Message{Destination: "orders.created"}))
	must(t, pub.Publish(t.Context(), "x"))
	for range 2 {
		m := got.Next(t)
		switch m.Destination {
		case "orders.created", "orders.eu.shipped":
		default:
			t.Fatalf("got a message at %q", m.Destination)
		}
	}
}
