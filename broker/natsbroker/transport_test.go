package natsbroker_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/natstest"
)

const wait = time.Minute // a condition deadline; a passing test never waits this long

// started returns a started broker over tr, closed when the test ends.
func started(t *testing.T, tr driver.Transport, subscribe func(b *broker.Broker)) *broker.Broker {
	t.Helper()
	b := broker.New(tr)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("close broker: %v", err)
		}
	})
	if subscribe != nil {
		subscribe(b)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return b
}

func collect(in *testkit.Inbox[*broker.Message]) func(context.Context, *broker.Message) error {
	return func(_ context.Context, m *broker.Message) error {
		in.Put(m.Clone())
		return nil
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestInfo(t *testing.T) {
	srv := natstest.New(t)
	tr := connect(t, srv)
	defer tr.Close(context.Background())
	info := tr.Info()
	host, port, err := net.SplitHostPort(srv.URL()[len("nats://"):])
	if err != nil {
		t.Fatal(err)
	}
	want := driver.Info{System: "nats", ServerAddress: host, ClientID: "tracebus-test", AckOperation: "ack", TemporaryPrefix: "_INBOX.", Separator: "."}
	want.ServerPort, _ = strconv.Atoi(port)
	if info != want {
		t.Errorf("Info() = %+v, want %+v", info, want)
	}
}

// TestInfoFollowsFailover connects to two servers; when the first goes
// away and the connection moves to the second, Info names the second.
func TestInfoFollowsFailover(t *testing.T) {
	first, second := natstest.New(t), natstest.New(t)
	if !first.Embedded() {
		t.Skip("failover needs embedded servers")
	}
	nc, err := natsgo.Connect(first.URL()+","+second.URL(), natsgo.DontRandomize(),
		natsgo.MaxReconnects(-1), natsgo.ReconnectWait(20*time.Millisecond),
		natsgo.ErrorHandler(func(*natsgo.Conn, *natsgo.Subscription, error) {}))
	must(t, err)
	t.Cleanup(nc.Close)
	tr := newTransport(t, nc)
	t.Cleanup(func() { _ = tr.Close(context.Background()) })
	port := func(s *natstest.Server) int {
		p, _ := strconv.Atoi(s.URL()[strings.LastIndexByte(s.URL(), ':')+1:])
		return p
	}
	if got := tr.Info().ServerPort; got != port(first) {
		t.Fatalf("port %d, want the first server's %d", got, port(first))
	}
	must(t, first.Stop())
	testutil.Eventually(t, wait, func() bool { return tr.Info().ServerPort == port(second) },
		"Info names the server the connection failed over to")
	if got := tr.Info().ServerAddress; got != "127.0.0.1" {
		t.Errorf("address %q", got)
	}
}

// TestConnOwnership: a transport made by New leaves the caller's
// connection open, one made by Connect closes its own.
func TestConnOwnership(t *testing.T) {
	srv := natstest.New(t)
	ctx := context.Background()
	nc := srv.Connect(t)
	must(t, newTransport(t, nc).Close(ctx))
	if !nc.IsConnected() {
		t.Error("Close closed the caller's connection")
	}
	tr := connect(t, srv)
	must(t, tr.Close(ctx))
	if !tr.Conn().IsClosed() {
		t.Error("Close left the connection Connect made open")
	}
}

// WithConnectOptions cannot apply to a connection made already: New
// refuses it rather than ignoring it.
func TestNewRefusesConnectOptions(t *testing.T) {
	nc := natstest.New(t).Connect(t)
	_, err := natsbroker.New(nc, natsbroker.WithConnectOptions(natsgo.Name("ignored")))
	if !errors.Is(err, broker.ErrInvalid) || !strings.Contains(err.Error(), "WithConnectOptions") {
		t.Fatalf("New with WithConnectOptions: %v, want ErrInvalid naming the option", err)
	}
}

// The transport's Info names the connection's inbox prefix as the prefix of
// temporary destinations, and the dot as the subject separator.
func TestInfoTemporaryPrefix(t *testing.T) {
	srv := natstest.New(t)
	tr := newTransport(t, srv.Connect(t))
	temporary := func(tr *natsbroker.Transport, dest string) bool {
		return strings.HasPrefix(dest, tr.Info().TemporaryPrefix)
	}
	if info := tr.Info(); info.TemporaryPrefix == "" || info.Separator != "." {
		t.Fatalf("info %+v: no temporary prefix or separator", info)
	}
	if !temporary(tr, tr.Conn().NewInbox()) || !temporary(tr, "_INBOX.abc") {
		t.Error("an _INBOX. subject is not temporary")
	}
	if temporary(tr, "orders") || temporary(tr, "_INBOXES") {
		t.Error("an ordinary subject is temporary")
	}
	custom := newTransport(t, srv.Connect(t, natsgo.CustomInboxPrefix("_R")))
	if !temporary(custom, custom.Conn().NewInbox()) || temporary(custom, "_INBOX.abc") {
		t.Errorf("custom inbox prefix not honoured")
	}
}

// TestHeaderCase publishes headers through the broker and reads them with
// a raw nats.go subscription (what other clients see), and publishes with
// nats.go and reads through the broker (what handlers see): keys keep
// their case both ways, on core NATS and on JetStream.
func TestHeaderCase(t *testing.T) {
	for _, js := range []bool{false, true} {
		t.Run("jetstream="+strconv.FormatBool(js), func(t *testing.T) {
			srv := natstest.New(t)
			var opts []natsbroker.Option
			if js {
				createStream(t, srv, jetStreamClient(t, srv), "CASE", "case.>")
				opts = append(opts, natsbroker.WithJetStream())
			}
			in := testkit.NewInbox[*broker.Message](wait)
			b := started(t, connect(t, srv, opts...), func(b *broker.Broker) {
				must(t, b.Subscribe("case.>", collect(in)))
			})
			raw := srv.Connect(t)
			rawSub, err := raw.SubscribeSync("case.out")
			must(t, err)
			must(t, raw.Flush())

			sent := &broker.Message{Destination: "case.out", Body: []byte("x")}
			sent.Headers.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
			sent.Headers.Set("tracestate", "vendor=1")
			sent.Headers.Set("X-Mixed-Case", "m")
			sent.Headers.Set("UPPER", "u")
			sent.Headers.Add("x-dup", "one")
			sent.Headers.Add("x-dup", "two")
			must(t, b.Publish(context.Background(), sent))

			m, err := rawSub.NextMsg(wait)
			must(t, err)
			for _, kv := range sent.Headers {
				if vs, ok := m.Header[kv.Key]; !ok || !slices.Contains(vs, kv.Value) {
					t.Errorf("wire header %q = %q, want %q with that exact key; wire: %v", kv.Key, vs, kv.Value, m.Header)
				}
			}
			if _, ok := m.Header["Traceparent"]; ok {
				t.Error("traceparent was canonicalized on the wire")
			}
			got := in.Next(t)
			if !slices.Equal(got.Headers.Values("x-dup"), []string{"one", "two"}) {
				t.Errorf("x-dup = %q", got.Headers.Values("x-dup"))
			}
			keys := got.Headers.Keys()
			for _, k := range []string{"traceparent", "tracestate", "X-Mixed-Case", "UPPER", "x-dup"} {
				if !slices.Contains(keys, k) {
					t.Errorf("handler header keys %q lack %q", keys, k)
				}
			}

			// Another client writes lower- and upper-case keys itself.
			rm := natsgo.NewMsg("case.in")
			rm.Header["traceparent"] = []string{"lower"}
			rm.Header["Baggage"] = []string{"k=v"}
			rm.Data = []byte("y")
			must(t, raw.PublishMsg(rm))
			got = in.Next(t)
			if keys := got.Headers.Keys(); !slices.Contains(keys, "traceparent") || !slices.Contains(keys, "Baggage") {
				t.Errorf("handler header keys %q, want traceparent and Baggage as written", keys)
			}
			if got.Headers.Get("Traceparent") != "lower" || got.Headers.Get("baggage") != "k=v" {
				t.Errorf("case-insensitive lookups failed: %v", got.Headers)
			}
		})
	}
}

// TestHostileHeaders sends headers that NATS cannot carry, odd values, and
// a header block that does not parse: every message is delivered.
func TestHostileHeaders(t *testing.T) {
	srv := natstest.New(t)
	in := testkit.NewInbox[*broker.Message](wait)
	b := started(t, connect(t, srv), func(b *broker.Broker) {
		must(t, b.Subscribe("hostile", collect(in)))
	})

	t.Run("KeysNATSCannotCarry", func(t *testing.T) {
		m := &broker.Message{Destination: "hostile", Body: []byte("keys")}
		for _, k := range []string{"", "has space", "colon:key", "new\r\nline", "ünïcode", "x\x00"} {
			m.Headers.Add(k, "v")
		}
		m.Headers.Set("x-good", "kept")
		must(t, b.Publish(context.Background(), m))
		got := in.Next(t)
		if string(got.Body) != "keys" || got.Headers.Get("x-good") != "kept" || got.Headers.Len() != 1 {
			t.Errorf("got body %q headers %v, want the body and x-good only", got.Body, got.Headers)
		}
	})

	t.Run("OddValues", func(t *testing.T) {
		m := &broker.Message{Destination: "hostile", Body: []byte("values")}
		m.Headers.Set("traceparent", "not a trace parent")
		m.Headers.Set("crlf", "a\r\nInjected: yes")
		m.Headers.Set("empty", "")
		m.Headers.Set("unicode", "ünïcode ✓")
		m.Headers.Set("big", string(make([]byte, 32<<10)))
		for i := range 200 {
			m.Headers.Add("many", strconv.Itoa(i))
		}
		must(t, b.Publish(context.Background(), m))
		got := in.Next(t)
		if string(got.Body) != "values" {
			t.Fatalf("body %q", got.Body)
		}
		if got.Headers.Get("Injected") != "" {
			t.Error("a CR LF in a value injected a header")
		}
		if got.Headers.Get("unicode") != "ünïcode ✓" || len(got.Headers.Values("many")) != 200 {
			t.Errorf("values changed: unicode %q, %d of many", got.Headers.Get("unicode"), len(got.Headers.Values("many")))
		}
	})

	t.Run("MalformedHeaderBlock", func(t *testing.T) {
		// Speak the protocol directly: a header block with a line without
		// a colon, which nats.go cannot decode.
		conn, err := net.DialTimeout("tcp", srv.URL()[len("nats://"):], wait)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		hdr := "NATS/1.0\r\nno colon here\r\n\r\n"
		payload := "malformed"
		proto := "CONNECT {\"headers\":true,\"verbose\":false,\"pedantic\":false}\r\n" +
			"HPUB hostile " + strconv.Itoa(len(hdr)) + " " + strconv.Itoa(len(hdr)+len(payload)) + "\r\n" +
			hdr + payload + "\r\nPING\r\n"
		if _, err := conn.Write([]byte(proto)); err != nil {
			t.Fatal(err)
		}
		got := in.Next(t)
		if string(got.Body) != payload {
			t.Errorf("body %q, want %q", got.Body, payload)
		}
	})
}

func TestJetStreamPublish(t *testing.T) {
	srv := natstest.New(t)
	js := jetStreamClient(t, srv)
	createStream(t, srv, js, "PUB", "pub.>")
	tr := connect(t, srv, natsbroker.WithJetStream("pub.>", "nostream.>"))
	b := started(t, tr, nil)
	ctx := context.Background()

	t.Run("DeduplicatesByID", func(t *testing.T) {
		for range 3 {
			must(t, b.Publish(ctx, &broker.Message{Destination: "pub.dedup", ID: "order-1", Body: []byte("x")}))
		}
		must(t, b.Publish(ctx, &broker.Message{Destination: "pub.dedup", ID: "order-2", Body: []byte("y")}))
		stream, err := js.Stream(ctx, "PUB")
		must(t, err)
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter("pub.dedup"))
		must(t, err)
		if n := info.State.Subjects["pub.dedup"]; n != 2 {
			t.Errorf("stream holds %d messages, want 2", n)
		}
		m, err := stream.GetLastMsgForSubject(ctx, "pub.dedup")
		must(t, err)
		if m.Header.Get("Nats-Msg-Id") != "order-2" {
			t.Errorf("stored Nats-Msg-Id %q", m.Header.Get("Nats-Msg-Id"))
		}
	})

	t.Run("NoStream", func(t *testing.T) {
		err := b.Publish(ctx, &broker.Message{Destination: "nostream.x", Body: []byte("x")})
		if !errors.Is(err, jetstream.ErrNoStreamResponse) {
			t.Errorf("publish without a stream: %v, want ErrNoStreamResponse", err)
		}
	})

	t.Run("BatchReportsEachMessage", func(t *testing.T) {
		raw := srv.Connect(t)
		sub, err := raw.SubscribeSync("plain.x")
		must(t, err)
		must(t, raw.Flush())
		msgs := []*broker.Message{
			{Destination: "pub.batch", Body: []byte("0")},
			{Destination: "nostream.batch", Body: []byte("1")},
			{Destination: "plain.x", Body: []byte("2")},
			{Destination: "pub.batch", Body: []byte("3")},
		}
		err = b.PublishBatch(ctx, msgs)
		var be broker.BatchError
		if !errors.As(err, &be) || !slices.Equal(be.Failed(), []int{1}) {
			t.Fatalf("batch error %v, want message 1 failed", err)
		}
		if !errors.Is(err, jetstream.ErrNoStreamResponse) {
			t.Errorf("batch error %v does not wrap the cause", err)
		}
		if m, err := sub.NextMsg(wait); err != nil || string(m.Data) != "2" {
			t.Errorf("core message of the batch: %v %v", m, err)
		}
		stream, err := js.Stream(ctx, "PUB")
		must(t, err)
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter("pub.batch"))
		must(t, err)
		if n := info.State.Subjects["pub.batch"]; n != 2 {
			t.Errorf("stream holds %d batch messages, want 2", n)
		}
	})

	t.Run("Closed", func(t *testing.T) {
		tr := connect(t, srv)
		must(t, tr.Close(ctx))
		if err := tr.Publish(ctx, []*broker.Message{{Destination: "x"}}); !errors.Is(err, broker.ErrClosed) {
			t.Errorf("publish after close: %v", err)
		}
		if _, err := tr.Subscribe(ctx, driver.SubscriptionSpec{Destination: "x"}, nil); !errors.Is(err, broker.ErrClosed) {
			t.Errorf("subscribe after close: %v", err)
		}
		if err := tr.Close(ctx); err != nil {
			t.Errorf("second close: %v", err)
		}
	})
}

// TestDeliveryFacts checks what a consumed message says about its
// delivery, on JetStream and on core NATS.
func TestDeliveryFacts(t *testing.T) {
	srv := natstest.New(t)
	createStream(t, srv, jetStreamClient(t, srv), "FACTS", "facts.>")
	in := testkit.NewInbox[*broker.Message](wait)
	core := testkit.NewInbox[*broker.Message](wait)
	before := time.Now()
	b := started(t, connect(t, srv, natsbroker.WithJetStream("facts.>")), func(b *broker.Broker) {
		must(t, b.Subscribe("facts.*", collect(in), broker.Group("billing")))
		must(t, b.Subscribe("plain.*", collect(core), broker.Group("billing")))
	})
	ctx := context.Background()
	must(t, b.Publish(ctx, &broker.Message{Destination: "facts.a", Body: []byte("1")}))
	must(t, b.Publish(ctx, &broker.Message{Destination: "facts.b", ID: "id-2", Body: []byte("2")}))
	in.Next(t)
	got := in.Next(t)
	want := driver.Delivery{
		Subscription:     "facts.*",
		Group:            "billing",
		Sequence:         2,
		ConsumerSequence: 2,
		DeliveryCount:    1,
		Timestamp:        got.Delivery.Timestamp,
		Stream:           "FACTS",
		Consumer:         "billing_facts_+",
	}
	if got.Delivery != want {
		t.Errorf("delivery %+v, want %+v", got.Delivery, want)
	}
	if got.Destination != "facts.b" || got.ID != "id-2" || got.ReplyTo != "" {
		t.Errorf("destination %q id %q reply %q", got.Destination, got.ID, got.ReplyTo)
	}
	if ts := got.Delivery.Timestamp; ts.Before(before.Add(-time.Second)) || ts.After(time.Now().Add(time.Second)) {
		t.Errorf("timestamp %v not around now", ts)
	}

	// Core NATS: request-reply through the broker.
	raw := srv.Connect(t)
	reply := make(chan *natsgo.Msg, 1)
	go func() {
		m, err := raw.Request("plain.q", []byte("question"), wait)
		if err == nil {
			reply <- m
		}
		close(reply)
	}()
	q := core.Next(t)
	if q.Destination != "plain.q" || q.Delivery.Subscription != "plain.*" || q.Delivery.Group != "billing" ||
		q.Delivery.DeliveryCount != 1 || !strings.HasPrefix(q.ReplyTo, "_INBOX.") {
		t.Errorf("core message %+v", q)
	}
	must(t, b.Publish(ctx, &broker.Message{Destination: q.ReplyTo, Body: []byte("answer")}))
	if m := <-reply; m == nil || string(m.Data) != "answer" {
		t.Errorf("reply %v", m)
	}
}

// TestSubscriptionName checks the consumer name the broker reports to
// telemetry: only JetStream subscriptions with a durable or bound consumer
// have one.
func TestSubscriptionName(t *testing.T) {
	srv := natstest.New(t)
	tr := connect(t, srv, natsbroker.WithJetStream("js.>"))
	t.Cleanup(func() { _ = tr.Close(context.Background()) })
	spec := func(dest, name, group string, opts ...broker.SubscribeOption) driver.SubscriptionSpec {
		s := driver.SubscriptionSpec{Destination: dest, Name: name, Group: group}
		for _, o := range opts {
			s.TransportOptions = append(s.TransportOptions, transportOption(t, o))
		}
		return s
	}
	cases := []struct {
		spec driver.SubscriptionSpec
		want string
	}{
		{spec("core.orders", "ignored", "g"), ""},
		{spec("js.orders", "", ""), ""},
		{spec("js.orders", "billing", "g"), "billing"},
		{spec("js.orders.*", "", "billing"), "billing_js_orders_+"},
		{spec("core.orders", "", "", natsbroker.JetStream(), natsbroker.BindConsumer("existing")), "existing"},
		{spec("js.orders", "billing", "", natsbroker.Core()), ""},
	}
	for _, c := range cases {
		if got := tr.SubscriptionName(c.spec); got != c.want {
			t.Errorf("%+v: got %q, want %q", c.spec, got, c.want)
		}
	}
}

// The broker's logger reaches the transport (driver.LoggerSetter).
func TestBrokerLoggerReachesTransport(t *testing.T) {
	srv := natstest.New(t)
	ctx := context.Background()
	var brokerLog strings.Builder
	b := broker.New(newTransport(t, srv.Connect(t)),
		broker.WithLogger(slog.New(slog.NewTextHandler(&brokerLog, nil))))
	msg := &broker.Message{Destination: "log.test"}
	msg.Headers.Set("bad key", "dropped")
	must(t, b.Publish(ctx, msg)) // logged synchronously, before Publish returns
	must(t, b.Close(ctx))
	const line = "natsbroker: dropped a header"
	if !strings.Contains(brokerLog.String(), line) {
		t.Errorf("broker log %q, want %q", brokerLog.String(), line)
	}
}
