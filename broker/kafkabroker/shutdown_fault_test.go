package kafkabroker_test

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"go.uber.org/goleak"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/kafkatest"
)

// TestShutdownUnderLoad closes a group member while a handler is in flight
// on every one of its lanes and a backlog waits. Close returns once they
// have finished and their offsets are committed: a second member of the
// group never gets one of those messages again, handles the rest of the
// backlog (nothing lost), and no goroutine of the first member is left.
func TestShutdownUnderLoad(t *testing.T) {
	n := testkit.Scale(2_000, 50_000)
	const partitions, lanes, group = 4, 4, "shutdown"
	c := kafkatest.New(t)
	topic := newTopic(t, c, partitions)
	pub := newBroker(t, c)
	msgs := make([]*broker.Message, 0, n)
	for i := range n {
		body := strconv.Itoa(i)
		msgs = append(msgs, &broker.Message{Destination: topic, Key: []byte(body), Body: []byte(body)})
	}
	if err := pub.PublishBatch(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	// The goroutine check below is about the member. The publisher and the
	// cluster's admin client are done: closed, they cannot open a
	// connection (and with it a goroutine of the in-process cluster) while
	// the member is being checked, as their metadata refresh otherwise
	// may.
	if err := pub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Client().Transport.(*kafka.Transport).CloseIdleConnections()
	quiet := broker.WithLogger(slog.New(slog.DiscardHandler))
	leaks := goleak.IgnoreCurrent()

	var (
		mu       sync.Mutex
		byFirst  = map[string]int{}
		bySecond = map[string]int{}
	)
	tr, err := kafkabroker.New(c.TransportOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	first := broker.New(tr, quiet)
	var started, finished, blocked atomic.Int64
	release := make(chan struct{})
	if err := first.Subscribe(topic, func(_ context.Context, m *broker.Message) error {
		// After a quarter of the backlog every lane holds its message
		// until Close has begun.
		if started.Add(1) > int64(n/4) {
			blocked.Add(1)
			<-release
		}
		mu.Lock()
		byFirst[string(m.Body)]++
		mu.Unlock()
		finished.Add(1)
		return nil
	}, broker.Group(group), broker.Concurrency(lanes)); err != nil {
		t.Fatal(err)
	}
	start(t, first)
	eventually(t, func() bool { return blocked.Load() == lanes }, "a handler in flight on every lane")

	testkit.CloseWhileBlocked(t, first, func() { close(release) }, wait)
	if s, f := started.Load(), finished.Load(); s != f {
		t.Fatalf("Close returned with %d handlers started and %d finished", s, f)
	}
	// The in-process cluster serves every connection with goroutines of
	// its own, among them the publisher's, which may connect at any time:
	// they are the server's, not the member's.
	goleak.VerifyNone(t, leaks)

	second := newBroker(t, c)
	if err := second.Subscribe(topic, func(_ context.Context, m *broker.Message) error {
		mu.Lock()
		bySecond[string(m.Body)]++
		mu.Unlock()
		return nil
	}, broker.Group(group), broker.Concurrency(lanes)); err != nil {
		t.Fatal(err)
	}
	start(t, second)
	missing := func() int {
		mu.Lock()
		defer mu.Unlock()
		lost := 0
		for i := range n {
			body := strconv.Itoa(i)
			if byFirst[body] == 0 && bySecond[body] == 0 {
				lost++
			}
		}
		return lost
	}
	testutil.Eventually(t, 60*time.Second, func() bool { return missing() == 0 }, "every message handled by one of the members")
	mu.Lock()
	defer mu.Unlock()
	var twice []string
	for body := range byFirst {
		if bySecond[body] > 0 {
			twice = append(twice, body)
		}
	}
	if len(twice) > 0 {
		t.Errorf("%d messages handled before Close returned came again: their offsets were not committed: %v", len(twice), twice)
	}
	t.Logf("%d messages: %d handled by the first member (%d in flight when Close began), %d by the second", n, len(byFirst), lanes, len(bySecond))
}
