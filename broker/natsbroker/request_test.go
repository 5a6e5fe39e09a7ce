package natsbroker_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/testutil/conformance"
	"github.com/tracebus/tracebus/testutil/natstest"
)

func TestRequestReplyCore(t *testing.T) {
	s := suite(t, false)
	s.Features.NoResponders = true
	conformance.TestRequestReply(t, s)
}

// On JetStream subjects requests are stored and consumed like any message;
// the replies come back over core NATS. The server cannot say that nobody
// consumes a stream, so there is no no-responders error.
func TestRequestReplyJetStream(t *testing.T) {
	conformance.TestRequestReply(t, suite(t, true))
}

func TestRequestNoRespondersWrapsNATSError(t *testing.T) {
	srv := natstest.New(t)
	b := broker.New(connect(t, srv))
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := b.Request(ctx, &broker.Message{Destination: "nobody.here"})
	if !errors.Is(err, broker.ErrNoResponders) || !errors.Is(err, natsgo.ErrNoResponders) {
		t.Fatalf("request error %v, want one wrapping broker.ErrNoResponders and nats.ErrNoResponders", err)
	}
}

// Many requests in flight share one inbox subscription, and a plain nats.go
// responder (msg.Respond, no tracebus headers) answers them: the reply is
// matched by its subject.
func TestRequestOneInboxNativeResponder(t *testing.T) {
	srv := natstest.New(t)
	responder := srv.Connect(t)
	if _, err := responder.Subscribe("native.echo", func(m *natsgo.Msg) { _ = m.Respond(append([]byte("re: "), m.Data...)) }); err != nil {
		t.Fatal(err)
	}
	if err := responder.Flush(); err != nil {
		t.Fatal(err)
	}
	tr := connect(t, srv)
	b := broker.New(tr)
	t.Cleanup(func() { _ = b.Close(context.Background()) })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := string(rune('a' + i))
			reply, err := b.Request(ctx, &broker.Message{Destination: "native.echo", Body: []byte(body)})
			if err == nil && string(reply.Body) != "re: "+body {
				err = errors.New("wrong reply " + string(reply.Body))
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := tr.Conn().NumSubscriptions(); got != 1 {
		t.Errorf("%d subscriptions on the requester's connection, want the one inbox", got)
	}
}

// BenchmarkRequest compares the latency of one request/reply round trip
// through a broker without middleware, and through a typed Requester, with
// nats.go's own Request, against the same nats.go responder on another
// connection of the same embedded server.
func BenchmarkRequest(b *testing.B) {
	srv := natstest.New(b)
	responder := srv.Connect(b)
	if _, err := responder.Subscribe("bench.request", func(m *natsgo.Msg) { _ = m.Respond(m.Data) }); err != nil {
		b.Fatal(err)
	}
	if err := responder.Flush(); err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"id":"o-1","quantity":3}`)

	b.Run("broker", func(b *testing.B) {
		br := broker.New(transport(b, srv))
		b.Cleanup(func() { _ = br.Close(context.Background()) })
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := br.Request(ctx, &broker.Message{Destination: "bench.request", Body: body}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("typed", func(b *testing.B) {
		br := broker.New(transport(b, srv))
		b.Cleanup(func() { _ = br.Close(context.Background()) })
		r := broker.Must(broker.NewRequester[testkit.Order, testkit.Order](br, "bench.request"))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Request(ctx, testkit.Order{ID: "o-1", Quantity: 3}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("natsgo", func(b *testing.B) {
		nc := srv.Connect(b)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := nc.RequestWithContext(ctx, "bench.request", body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// transport returns a transport on a new connection to srv.
func transport(b *testing.B, srv *natstest.Server) *natsbroker.Transport {
	tr, err := natsbroker.New(srv.Connect(b))
	if err != nil {
		b.Fatal(err)
	}
	return tr
}
