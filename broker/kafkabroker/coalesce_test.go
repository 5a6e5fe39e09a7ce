package kafkabroker

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tracebus/tracebus/broker"
)

// coalesceWait bounds every wait for a condition in these tests.
const coalesceWait = 15 * time.Second

// coalesceSetup starts an in-process cluster with topic and a transport
// whose writer reports each batch it completed on batches and holds the
// first until release is closed.
func coalesceSetup(t *testing.T, topic string, opts ...Option) (tr *Transport, batches chan []kafka.Message, release chan struct{}) {
	t.Helper()
	fake, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	batches = make(chan []kafka.Message, 100)
	release = make(chan struct{})
	var once sync.Once
	hook := WithWriterConfig(func(w *kafka.Writer) {
		w.Completion = func(msgs []kafka.Message, err error) {
			if err == nil {
				batches <- slices.Clone(msgs)
			}
			once.Do(func() { <-release })
		}
	})
	tr, err = New(append([]Option{WithSeedBrokers(fake.ListenAddrs()...), hook}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close(context.Background()) })
	return tr, batches, release
}

// awaitPending waits until n publishes to topic wait for the next write.
func awaitPending(t *testing.T, tr *Transport, topic string, n int) {
	t.Helper()
	deadline := time.Now().Add(coalesceWait)
	for {
		tr.writes.mu.Lock()
		got := 0
		if q := tr.writes.topics[topic]; q != nil {
			got = len(q.pending)
		}
		tr.writes.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d publishes pending, want %d", got, n)
		}
		time.Sleep(time.Millisecond) // polling a condition, with a deadline
	}
}

func recvBatch(t *testing.T, batches chan []kafka.Message) []kafka.Message {
	t.Helper()
	select {
	case b := <-batches:
		return b
	case <-time.After(coalesceWait):
		t.Fatal("no batch written")
		return nil
	}
}

// Publishes that arrive while a write to their topic is on the wire go out
// together in the next one, and each learns where its message was stored.
func TestConcurrentPublishesAreWrittenTogether(t *testing.T) {
	const topic = "coalesce"
	tr, batches, release := coalesceSetup(t, topic)
	ctx := context.Background()

	first := make(chan error, 1)
	go func() { first <- tr.Publish(ctx, []*broker.Message{{Destination: topic, Body: []byte("first")}}) }()
	if got := recvBatch(t, batches); len(got) != 1 {
		t.Fatalf("first batch has %d messages, want 1", len(got))
	}

	const n = 5
	msgs := make([]*broker.Message, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range msgs {
		msgs[i] = &broker.Message{Destination: topic, Body: []byte{byte('a' + i)}}
		wg.Go(func() { errs <- tr.Publish(ctx, msgs[i:i+1]) })
	}
	awaitPending(t, tr, topic, n)
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := recvBatch(t, batches); len(got) != n {
		t.Fatalf("second batch has %d messages, want the %d pending publishes together", len(got), n)
	}
	offsets := map[int64]bool{}
	for _, m := range msgs {
		if !m.Delivery.Stored || m.Delivery.Offset < 1 || m.Delivery.Offset > n {
			t.Fatalf("message %q: stored %v at offset %d, want one of 1..%d", m.Body, m.Delivery.Stored, m.Delivery.Offset, n)
		}
		offsets[m.Delivery.Offset] = true
	}
	if len(offsets) != n {
		t.Fatalf("offsets %v, want %d different ones", offsets, n)
	}
}

// A publish that cannot be written does not fail the publishes written
// together with it, and a publish whose ctx ends while it waits is not
// written at all.
func TestCoalescedPublishFailsAlone(t *testing.T) {
	const topic = "coalesce-fail"
	tr, batches, release := coalesceSetup(t, topic, WithWriterConfig(func(w *kafka.Writer) { w.BatchBytes = 4096 }))
	ctx := context.Background()

	first := make(chan error, 1)
	go func() { first <- tr.Publish(ctx, []*broker.Message{{Destination: topic, Body: []byte("first")}}) }()
	recvBatch(t, batches)

	good := &broker.Message{Destination: topic, Body: []byte("good")}
	tooLarge := &broker.Message{Destination: topic, Body: bytes.Repeat([]byte("x"), 8192)}
	gone := &broker.Message{Destination: topic, Body: []byte("gone")}
	goneCtx, cancel := context.WithCancel(ctx)
	results := make(chan error, 3)
	go func() { results <- tr.Publish(ctx, []*broker.Message{good}) }()
	awaitPending(t, tr, topic, 1)
	go func() { results <- tr.Publish(ctx, []*broker.Message{tooLarge}) }()
	awaitPending(t, tr, topic, 2)
	go func() { results <- tr.Publish(goneCtx, []*broker.Message{gone}) }()
	awaitPending(t, tr, topic, 3)
	cancel()
	awaitPending(t, tr, topic, 2)
	if err := <-results; !errors.Is(err, context.Canceled) {
		t.Fatalf("publish with a cancelled ctx: %v, want context.Canceled", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	var failed int
	for range 2 {
		if err := <-results; err != nil {
			var tl kafka.MessageTooLargeError
			if !errors.As(err, &tl) {
				t.Fatalf("publish error %v, want kafka.MessageTooLargeError", err)
			}
			failed++
		}
	}
	if failed != 1 || !good.Delivery.Stored || tooLarge.Delivery.Stored || gone.Delivery.Stored {
		t.Fatalf("%d failed; stored: good %v, too large %v, cancelled %v; want only the good one stored",
			failed, good.Delivery.Stored, tooLarge.Delivery.Stored, gone.Delivery.Stored)
	}
	if got := recvBatch(t, batches); len(got) != 1 || string(got[0].Value) != "good" {
		t.Fatalf("second batch %v, want the good message alone", got)
	}
}
