package natsbroker_test

import (
	"context"
	"testing"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/testutil/natstest"
)

const benchTraceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

var benchBody = make([]byte, 256)

// BenchmarkPublish compares a publish through a broker without middleware
// (what the transport itself costs) with the same publish made with
// nats.go directly: one 256-byte message with a traceparent header, on
// core NATS and on JetStream.
func BenchmarkPublish(b *testing.B) {
	srv := natstest.New(b)
	ctx := context.Background()

	b.Run("core/broker", func(b *testing.B) {
		nc := srv.Connect(b)
		br := broker.New(newTransport(b, nc))
		b.Cleanup(func() { _ = br.Close(ctx) })
		b.ReportAllocs()
		for b.Loop() {
			m := &broker.Message{Destination: "bench.core", Body: benchBody}
			m.Headers.Set("traceparent", benchTraceparent)
			if err := br.Publish(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("core/natsgo", func(b *testing.B) {
		nc := srv.Connect(b)
		b.ReportAllocs()
		for b.Loop() {
			m := &natsgo.Msg{Subject: "bench.core", Header: natsgo.Header{"traceparent": {benchTraceparent}}, Data: benchBody}
			if err := nc.PublishMsg(m); err != nil {
				b.Fatal(err)
			}
		}
	})

	js, err := jetstream.New(srv.Connect(b))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "BENCH", Subjects: []string{"bench.js"}, Storage: jetstream.MemoryStorage, MaxMsgs: 10_000,
	}); err != nil {
		b.Fatal(err)
	}
	b.Run("jetstream/broker", func(b *testing.B) {
		nc := srv.Connect(b)
		br := broker.New(newTransport(b, nc, natsbroker.WithJetStream()))
		b.Cleanup(func() { _ = br.Close(ctx) })
		b.ReportAllocs()
		for b.Loop() {
			m := &broker.Message{Destination: "bench.js", Body: benchBody}
			m.Headers.Set("traceparent", benchTraceparent)
			if err := br.Publish(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("jetstream/natsgo", func(b *testing.B) {
		js, err := jetstream.New(srv.Connect(b))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			m := &natsgo.Msg{Subject: "bench.js", Header: natsgo.Header{"traceparent": {benchTraceparent}}, Data: benchBody}
			if _, err := js.PublishMsg(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
