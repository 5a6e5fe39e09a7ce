package natsbroker_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// TestKeepAlive runs a handler for several AckWaits: the transport reports
// progress, so the server does not redeliver the message while it is being
// handled.
func TestKeepAlive(t *testing.T) {
	srv := natstest.New(t)
	createStream(t, srv, jetStreamClient(t, srv), "SLOW", "slow")
	// AckWait is the margin the keep-alive (three reports per AckWait)
	// has against a starved process: at 200ms, a race build on a loaded
	// machine let it pass and the message was redelivered.
	const ackWait = 2 * time.Second
	var calls atomic.Int32
	in := testkit.NewInbox[string](wait)
	b := started(t, connect(t, srv, natsbroker.WithJetStream()), func(b *broker.Broker) {
		must(t, b.Subscribe("slow", func(ctx context.Context, m *broker.Message) error {
			if string(m.Body) == "slow" {
				calls.Add(1)
				// The handler's work: three AckWaits.
				select {
				case <-time.After(3 * ackWait):
				case <-ctx.Done():
				}
			}
			in.Put(string(m.Body))
			return nil
		}, broker.Name("slow"), broker.Concurrency(2), natsbroker.ConfigureConsumer(func(c *jetstream.ConsumerConfig) {
			c.AckWait = ackWait
		})))
	})
	publishOK(t, b, "slow", "slow")
	if v := in.Next(t); v != "slow" {
		t.Fatalf("got %q", v)
	}
	// A redelivery would have reached the second worker by now; a marker
	// behind it proves nothing else is queued.
	publishOK(t, b, "slow", "marker")
	if v := in.Next(t); v != "marker" {
		t.Fatalf("got %q before the marker", v)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("slow message handled %d times, want 1", n)
	}
}

// TestNakDelay checks that a failed JetStream message comes back after the
// backoff, with its delivery count increased, and not before.
func TestNakDelay(t *testing.T) {
	srv := natstest.New(t)
	createStream(t, srv, jetStreamClient(t, srv), "NAK", "nak")
	const backoff = 300 * time.Millisecond
	type delivery struct {
		count int
		at    time.Time
	}
	in := testkit.NewInbox[delivery](wait)
	b := started(t, connect(t, srv, natsbroker.WithJetStream()), func(b *broker.Broker) {
		must(t, b.Subscribe("nak", func(_ context.Context, m *broker.Message) error {
			in.Put(delivery{m.Delivery.DeliveryCount, time.Now()})
			if m.Delivery.DeliveryCount == 1 {
				return errors.New("try again")
			}
			return nil
		}, broker.Name("nak"), broker.RetryBackoff(broker.ConstantBackoff(backoff))))
	})
	publishOK(t, b, "nak", "x")
	first, second := in.Next(t), in.Next(t)
	if first.count != 1 || second.count != 2 {
		t.Fatalf("delivery counts %d, %d; want 1, 2", first.count, second.count)
	}
	// The server holds the message for the delay; the clocks are the same.
	if gap := second.at.Sub(first.at); gap < backoff {
		t.Errorf("redelivered after %v, before the %v backoff", gap, backoff)
	}
}

// TestWithStream lets the transport create the stream, and a second
// transport with a different configuration use the existing one as it is.
func TestWithStream(t *testing.T) {
	srv := natstest.New(t)
	js := jetStreamClient(t, srv)
	cfg := jetstream.StreamConfig{Name: "AUTO", Subjects: []string{"auto.>"}, MaxMsgs: 1000}
	deleteStreamAfter(t, srv, js, "AUTO")
	in := testkit.NewInbox[*broker.Message](wait)
	// No WithJetStream: the declared stream routes auto.> through JetStream.
	b := started(t, connect(t, srv, natsbroker.WithStream(cfg)), func(b *broker.Broker) {
		must(t, b.Subscribe("auto.*", collect(in), broker.Name("auto")))
	})
	publishOK(t, b, "auto.x", "1")
	if m := in.Next(t); m.Delivery.Stream != "AUTO" || m.Delivery.Sequence != 1 {
		t.Errorf("delivery %+v, want from stream AUTO", m.Delivery)
	}
	ctx := context.Background()
	other := cfg
	other.MaxMsgs = 5
	b2 := started(t, connect(t, srv, natsbroker.WithStream(other)), nil)
	publishOK(t, b2, "auto.y", "2")
	stream, err := js.Stream(ctx, "AUTO")
	must(t, err)
	if got := stream.CachedInfo().Config.MaxMsgs; got != 1000 {
		t.Errorf("existing stream was changed: MaxMsgs %d", got)
	}
	in.Next(t)
	// A core publish to a subject outside the stream stays core.
	if err := b2.Publish(ctx, &broker.Message{Destination: "elsewhere", Body: []byte("x")}); err != nil {
		t.Errorf("core publish: %v", err)
	}
}

// TestBindConsumer consumes through a consumer made outside the transport,
// and checks that an ephemeral consumer the transport made is deleted on
// Close while a bound or durable one stays.
func TestBindConsumer(t *testing.T) {
	srv := natstest.New(t)
	js := jetStreamClient(t, srv)
	createStream(t, srv, js, "BIND", "bind.>")
	ctx := context.Background()
	if _, err := js.CreateConsumer(ctx, "BIND", jetstream.ConsumerConfig{
		Durable: "ops", FilterSubject: "bind.ops", AckPolicy: jetstream.AckExplicitPolicy,
	}); err != nil {
		t.Fatal(err)
	}
	bound := testkit.NewInbox[*broker.Message](wait)
	anon := testkit.NewInbox[*broker.Message](wait)
	// A core transport: the options alone make these JetStream.
	b := broker.New(connect(t, srv))
	must(t, b.Subscribe("bind.ops", collect(bound), natsbroker.Stream("BIND"), natsbroker.BindConsumer("ops")))
	must(t, b.Subscribe("bind.anon", collect(anon), natsbroker.JetStream()))
	must(t, b.Start(ctx))
	consumers := func() int {
		stream, err := js.Stream(ctx, "BIND")
		must(t, err)
		n := 0
		for range stream.ConsumerNames(ctx).Name() {
			n++
		}
		return n
	}
	if n := consumers(); n != 2 {
		t.Fatalf("%d consumers while subscribed, want 2", n)
	}
	publishOK(t, b, "bind.ops", "ops")
	publishOK(t, b, "bind.anon", "anon")
	if m := bound.Next(t); m.Delivery.Consumer != "ops" {
		t.Errorf("consumed through %q, want ops", m.Delivery.Consumer)
	}
	if m := anon.Next(t); m.Delivery.Stream != "BIND" {
		t.Errorf("anonymous subscription consumed from %q", m.Delivery.Stream)
	}
	closeCtx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	must(t, b.Close(closeCtx))
	if n := consumers(); n != 1 {
		t.Errorf("%d consumers after close, want the bound one only", n)
	}
}

// TestCoreOverride subscribes with Core on a transport that routes
// everything through JetStream.
func TestCoreOverride(t *testing.T) {
	srv := natstest.New(t)
	in := testkit.NewInbox[*broker.Message](wait)
	tr := connect(t, srv, natsbroker.WithJetStream("js.>"))
	raw := srv.Connect(t)
	started(t, tr, func(b *broker.Broker) {
		must(t, b.Subscribe("js.events", collect(in), natsbroker.Core()))
	})
	// No stream stores js.events: only a core subscription can see it.
	must(t, raw.Publish("js.events", []byte("core")))
	if m := in.Next(t); string(m.Body) != "core" || m.Delivery.Stream != "" {
		t.Errorf("got %q from stream %q", m.Body, m.Delivery.Stream)
	}
}

func TestSubscribeErrors(t *testing.T) {
	srv := natstest.New(t)
	tr := connect(t, srv, natsbroker.WithJetStream("js.>"))
	t.Cleanup(func() { _ = tr.Close(context.Background()) })
	ctx := context.Background()
	deliver := func(context.Context, []*broker.Message, driver.Acknowledger) {}
	spec := func(dest string, opts ...broker.SubscribeOption) driver.SubscriptionSpec {
		s := driver.SubscriptionSpec{Destination: dest, Concurrency: 1}
		for _, o := range opts {
			s.TransportOptions = append(s.TransportOptions, transportOption(t, o))
		}
		return s
	}
	tests := []struct {
		name string
		spec driver.SubscriptionSpec
		want error
	}{
		{"UnknownOption", driver.SubscriptionSpec{Destination: "x", TransportOptions: []driver.TransportOption{foreignOption{}}}, errors.ErrUnsupported},
		{"CoreAndStream", spec("x", natsbroker.Core(), natsbroker.Stream("S")), broker.ErrInvalid},
		{"ConsumerOptionOnCore", spec("x", natsbroker.ConfigureConsumer(func(*jetstream.ConsumerConfig) {})), broker.ErrInvalid},
		{"NoStream", spec("js.nowhere"), natsbroker.ErrNoStream},
		{"NoStreamIsStreamNotFound", spec("js.nowhere"), jetstream.ErrStreamNotFound},
		{"UnknownStream", spec("x", natsbroker.Stream("NOPE")), jetstream.ErrStreamNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tr.Subscribe(ctx, tc.spec, deliver)
			if !errors.Is(err, tc.want) {
				t.Errorf("Subscribe: %v, want %v", err, tc.want)
			}
			if s != nil {
				t.Error("a subscription was returned with the error")
			}
		})
	}
}

// transportOption extracts the value a natsbroker subscription option hands
// to the transport, by subscribing it on a broker over a recording
// transport.
func transportOption(t *testing.T, o broker.SubscribeOption) driver.TransportOption {
	t.Helper()
	rec := &specRecorder{}
	b := broker.New(rec)
	must(t, b.Subscribe("x", func(context.Context, *broker.Message) error { return nil }, o))
	must(t, b.Start(context.Background()))
	_ = b.Close(context.Background())
	if len(rec.spec.TransportOptions) != 1 {
		t.Fatalf("option carried %d transport options", len(rec.spec.TransportOptions))
	}
	return rec.spec.TransportOptions[0]
}

// specRecorder is a transport that only records the spec it is asked to
// subscribe with.
type specRecorder struct{ spec driver.SubscriptionSpec }

func (r *specRecorder) Info() driver.Info { return driver.Info{System: "nats"} }
func (r *specRecorder) Publish(context.Context, []*broker.Message) error {
	return nil
}

func (r *specRecorder) Subscribe(_ context.Context, spec driver.SubscriptionSpec, _ driver.DeliverFunc) (driver.Subscription, error) {
	r.spec = spec
	return closer{}, nil
}
func (r *specRecorder) ValidateSubscription(driver.SubscriptionSpec) error { return nil }
func (r *specRecorder) OpenInbox(context.Context, driver.InboxFunc) (driver.Inbox, error) {
	return nil, errors.ErrUnsupported
}
func (r *specRecorder) Ping(context.Context) error  { return nil }
func (r *specRecorder) Close(context.Context) error { return nil }

type closer struct{}

func (closer) Close(context.Context) error { return nil }

func TestNilConn(t *testing.T) {
	tr, err := natsbroker.New(nil)
	if !errors.Is(err, broker.ErrInvalid) || tr != nil {
		t.Fatalf("New(nil) = %v, %v; want nil, ErrInvalid", tr, err)
	}
}

// TestDeadLetterInSameStream dead-letters a message whose id is set to a
// subject stored by the same stream. JetStream de-duplicates by
// Nats-Msg-Id, so the copy needs an id of its own or it is dropped while
// the publish is acknowledged, and the message is lost.
func TestDeadLetterInSameStream(t *testing.T) {
	srv := natstest.New(t)
	createStream(t, srv, jetStreamClient(t, srv), "DL", "dl.>")
	dead := testkit.NewInbox[*broker.Message](wait)
	b := started(t, connect(t, srv, natsbroker.WithJetStream()), func(b *broker.Broker) {
		must(t, b.Subscribe("dl.orders", func(context.Context, *broker.Message) error {
			return errors.New("always fails")
		}, broker.Name("orders"), broker.MaxAttempts(1), broker.DeadLetter("dl.orders.dead")))
		must(t, b.Subscribe("dl.orders.dead", func(_ context.Context, m *broker.Message) error {
			dead.Put(m.Clone())
			return nil
		}, broker.Name("dead")))
	})
	if err := b.Publish(context.Background(), &broker.Message{Destination: "dl.orders", ID: "order-1", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	got := dead.Next(t)
	if got.ID != "order-1.dead-letter" || string(got.Body) != "x" {
		t.Fatalf("dead letter id %q body %q", got.ID, got.Body)
	}
}

// foreignOption claims to be a NATS option but is not one of the
// transport's own.
type foreignOption struct{}

func (foreignOption) TransportName() string { return "nats" }
