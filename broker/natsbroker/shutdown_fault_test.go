package natsbroker_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// TestShutdownUnderLoad closes a broker while a JetStream subscription with
// eight concurrent handlers works through a backlog and every handler is in
// flight. Close returns once they have finished; every message they
// finished is acknowledged (a second broker on the same durable consumer
// never gets one of them again), the rest of the backlog is handled by the
// second broker, so nothing is lost, and no goroutine of the first broker
// is left.
func TestShutdownUnderLoad(t *testing.T) {
	n := testkit.Scale(2_000, 20_000)
	const workers = 8
	srv := natstest.New(t)
	js := jetStreamClient(t, srv)
	createStream(t, srv, js, "SHUTDOWN", "shutdown.>")
	for i := range n {
		if _, err := js.PublishAsync("shutdown.jobs", fmt.Appendf(nil, "m-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute): // a hang guard
		t.Fatal("backlog not stored")
	}
	// Redelivery after AckWait would hide an unsettled message in the
	// second broker's count; a short AckWait makes the first broker's
	// prefetched, never-delivered messages come back quickly instead.
	ackWait := natsbroker.ConfigureConsumer(func(c *jetstream.ConsumerConfig) { c.AckWait = time.Second })
	leaks := goleak.IgnoreCurrent()

	first := broker.New(connect(t, srv, natsbroker.WithJetStream()))
	var (
		mu       sync.Mutex
		byFirst  = map[string]int{}
		bySecond = map[string]int{}
	)
	var started, finished, blocked atomic.Int64
	release := make(chan struct{})
	if err := first.Subscribe("shutdown.jobs", func(_ context.Context, m *broker.Message) error {
		// After a quarter of the backlog every handler holds its message
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
	}, broker.Name("workers"), broker.Concurrency(workers), ackWait); err != nil {
		t.Fatal(err)
	}
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, time.Minute, func() bool { return blocked.Load() == workers }, "every handler in flight")

	testkit.CloseWhileBlocked(t, first, func() { close(release) }, 30*time.Second)
	if s, f := started.Load(), finished.Load(); s != f {
		t.Fatalf("Close returned with %d handlers started and %d finished", s, f)
	}
	// The durable consumer lives on in the embedded server, with its
	// goroutines; the client's must all be gone.
	goleak.VerifyNone(t, leaks,
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*consumer).loopAndGatherMsgs"),
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*consumer).processInboundAcks"),
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*consumer).processInboundNextMsgReqs"),
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*consumerFileStore).flushLoop"),
	)

	second := broker.New(connect(t, srv, natsbroker.WithJetStream()))
	t.Cleanup(func() { _ = second.Close(context.Background()) })
	if err := second.Subscribe("shutdown.jobs", func(_ context.Context, m *broker.Message) error {
		mu.Lock()
		bySecond[string(m.Body)]++
		mu.Unlock()
		return nil
	}, broker.Name("workers"), broker.Concurrency(workers), ackWait); err != nil {
		t.Fatal(err)
	}
	if err := second.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	missing := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for i := range n {
			body := fmt.Sprintf("m-%d", i)
			if byFirst[body] == 0 && bySecond[body] == 0 {
				out = append(out, body)
			}
		}
		return out
	}
	testutil.Eventually(t, 60*time.Second, func() bool { return len(missing()) == 0 }, "every message handled by one of the brokers")
	mu.Lock()
	defer mu.Unlock()
	var twice []string
	for body := range byFirst {
		if bySecond[body] > 0 {
			twice = append(twice, body)
		}
	}
	if len(twice) > 0 {
		t.Errorf("%d messages handled before Close returned came again: their acks were lost: %v", len(twice), twice)
	}
	t.Logf("%d messages: %d handled by the first broker (%d in flight when Close began), %d by the second", n, len(byFirst), workers, len(bySecond))
}
