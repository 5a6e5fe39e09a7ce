package natsbroker_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// TestConsumerDeletedMidStream deletes the consumer of a running
// subscription on the server while every handler is busy and messages keep
// being published, then lets the handlers go. Nothing may be lost: the
// consumer created again resumes where the old one got to, not at the
// stream's end (ephemeral) nor at its start (durable: the messages acked
// before the deletion are not handled again). For plain subscriptions the
// deletion must be noticed while the handlers are still blocked.
//
// Short: 2,000 messages; with TRACEBUS_HEAVY=1: 20,000.
func TestConsumerDeletedMidStream(t *testing.T) {
	total := testkit.Scale(2_000, 20_000)
	for _, durable := range []bool{false, true} {
		for _, batch := range []bool{false, true} {
			t.Run(fmt.Sprintf("durable=%v/batch=%v", durable, batch), func(t *testing.T) {
				testConsumerDeleted(t, total, durable, batch)
			})
		}
	}
}

func testConsumerDeleted(t *testing.T, total int, durable, batch bool) {
	const (
		concurrency = 4
		acked       = 50 // handled and acked before the deletion
	)
	srv := natstest.New(t)
	js := jetStreamClient(t, srv)
	createStream(t, srv, js, "DEL", "del")
	b := broker.New(connect(t, srv, natsbroker.WithJetStream()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})

	var (
		mu      sync.Mutex
		count   = make(map[string]int)
		gate    atomic.Pointer[chan struct{}]
		blocked atomic.Int32
	)
	handle := func(m *broker.Message) {
		if g := gate.Load(); g != nil {
			blocked.Add(1)
			<-*g
		}
		mu.Lock()
		count[string(m.Body)]++
		mu.Unlock()
	}
	// A message the client dropped (a fetch that expired as the server
	// sent it) comes back after AckWait; keep that short. Handlers blocked
	// below are kept alive by the transport's progress reports.
	opts := []broker.SubscribeOption{broker.Concurrency(concurrency),
		natsbroker.ConfigureConsumer(func(c *jetstream.ConsumerConfig) { c.AckWait = 2 * time.Second })}
	if durable {
		opts = append(opts, broker.Name("del"))
	}
	var err error
	if batch {
		opts = append(opts, broker.Batch(20, 50*time.Millisecond))
		err = b.SubscribeBatch("del", func(_ context.Context, msgs []*broker.Message) error {
			for _, m := range msgs {
				handle(m)
			}
			return nil
		}, opts...)
	} else {
		err = b.Subscribe("del", func(_ context.Context, m *broker.Message) error {
			handle(m)
			return nil
		}, opts...)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, "DEL")
	if err != nil {
		t.Fatal(err)
	}
	// consumer returns the stream's only consumer, or nil.
	consumer := func() *jetstream.ConsumerInfo {
		var found *jetstream.ConsumerInfo
		for info := range stream.ListConsumers(ctx).Info() {
			found = info
		}
		return found
	}

	publish := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if _, err := js.PublishAsync("del", fmt.Appendf(nil, "m-%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-ctx.Done():
			t.Fatal("publish acknowledgements did not arrive")
		}
	}

	// Phase 1: messages handled and acked.
	publish(0, acked)
	testutil.Eventually(t, time.Minute, func() bool {
		info := consumer()
		return info != nil && info.AckFloor.Stream >= acked
	}, "first messages acked")

	// Phase 2: every handler blocks; more is published; the consumer is
	// deleted under the subscription's feet.
	release := make(chan struct{})
	gate.Store(&release)
	half := acked + (total-acked)/2
	publish(acked, half)
	testutil.Eventually(t, time.Minute, func() bool { return blocked.Load() >= concurrency }, "handlers busy")
	old := consumer()
	if err := js.DeleteConsumer(ctx, "DEL", old.Name); err != nil {
		t.Fatal(err)
	}
	publish(half, half+(total-half)/2) // published while no consumer exists
	if !batch {
		// Noticed and created again while no handler is free.
		testutil.Eventually(t, time.Minute, func() bool {
			info := consumer()
			return info != nil && info.Created.After(old.Created)
		}, "consumer created again while every handler is busy")
	}

	// Phase 3: handlers free again; the rest is published.
	gate.Store(nil)
	close(release)
	publish(half+(total-half)/2, total)
	missing := func() []int {
		mu.Lock()
		defer mu.Unlock()
		var out []int
		for i := range total {
			if count[fmt.Sprintf("m-%d", i)] == 0 {
				out = append(out, i)
			}
		}
		return out
	}
	deadline := time.Now().Add(60 * time.Second)
	for m := missing(); len(m) > 0; m = missing() {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages never handled, from m-%d to m-%d", len(m), total, m[0], m[len(m)-1])
		}
		time.Sleep(10 * time.Millisecond)
	}

	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for i := range total {
		if n := count[fmt.Sprintf("m-%d", i)]; n > 1 {
			dups += n - 1
			if i < acked {
				t.Errorf("m-%d, acked before the deletion, was handled %d times: the new consumer replayed the stream", i, n)
			}
		}
	}
	t.Logf("%d messages, %d handled again after the re-creation", total, dups)
}
