package kafkabroker_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/kafkatest"
)

// storedAt returns where a span says its message is stored:
// "partition/offset", from its messaging.destination.partition.id and
// messaging.kafka.offset attributes.
func storedAt(s sdktrace.ReadOnlySpan) string {
	partition, offset := "?", "?"
	for _, a := range s.Attributes() {
		switch a.Key {
		case semconv.MessagingDestinationPartitionIDKey:
			partition = a.Value.AsString()
		case semconv.MessagingKafkaOffsetKey:
			offset = strconv.FormatInt(a.Value.AsInt64(), 10)
		}
	}
	return partition + "/" + offset
}

// TestScaledOutKafkaGroup runs three instances of one service on a
// three-broker cluster, each with its own transport and connections, in
// one consumer group over a replicated topic, with the telemetry
// middleware recording into one in-memory exporter. Fault-free, every
// message is handled exactly once and each partition by one instance
// only. Then one instance's connections are cut while a message is in its
// handler (no Close, no LeaveGroup, no commit): after its session times out
// the other two take its partitions over from the last commits; nothing is
// lost. Every process span, whichever instance made it, is the child of
// the send span of the message stored at its partition and offset.
func TestScaledOutKafkaGroup(t *testing.T) {
	const instances, partitions, group = 3, 6, "scaled"
	perPhase := testkit.Scale(150, 10_000)
	c := kafkatest.New(t, kafkatest.WithNumBrokers(3), kafkatest.WithKfakeOptions(kfake.GroupMinSessionTimeout(100*time.Millisecond)))
	if c.External() {
		t.Skip("needs the in-process cluster")
	}
	topic := topicName(t)
	c.CreateReplicatedTopic(t, topic, partitions, 3)

	rec := testutil.NewRecorder(t)
	telemetry := broker.WithMiddleware(middleware.NewTelemetry(
		middleware.WithTracerProvider(rec.TracerProvider),
		middleware.WithMeterProvider(rec.MeterProvider),
		middleware.WithPropagators(propagation.TraceContext{}),
	))
	// A session of several seconds keeps an instance starved of CPU from
	// being evicted; the cut one is evicted after it.
	timings := []kafkabroker.Option{
		kafkabroker.WithConsumerGroupConfig(func(gc *kafka.ConsumerGroupConfig) {
			gc.SessionTimeout, gc.RebalanceTimeout = 6*time.Second, 10*time.Second
		}),
	}
	got := newHandled()
	// Once the victim is armed, its handler blocks on the next message
	// until the test ends: the instance dies with it uncommitted.
	var armed atomic.Bool
	blocked, release := make(chan string, 1), make(chan struct{})
	defer close(release)
	cuts := make([]*severableNet, instances)
	for i := range instances {
		cuts[i] = &severableNet{}
		b := broker.New(mustTransport(t, c, append(timings, cuts[i].options()...)...), telemetry,
			broker.WithLogger(slog.New(slog.DiscardHandler)))
		t.Cleanup(func() {
			// A cut instance can reach nothing: its Close error is expected.
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			_ = b.Close(ctx)
		})
		name := "instance-" + strconv.Itoa(i)
		if err := b.Subscribe(topic, func(_ context.Context, m *broker.Message) error {
			if i == 0 && armed.Load() {
				select {
				case blocked <- string(m.Body):
				default:
				}
				<-release
				return nil // its commit cannot reach the cluster: not counted
			}
			got.add(name, m)
			return nil
		}, broker.Group(group)); err != nil {
			t.Fatal(err)
		}
		start(t, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Fake().WaitGroupStable(ctx, group, instances); err != nil {
		t.Fatalf("group of %d instances: %v", instances, err)
	}
	pub := broker.New(mustTransport(t, c), telemetry)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = pub.Close(ctx)
	})

	published := 0
	publish := func(n int) {
		t.Helper()
		for range n {
			body := strconv.Itoa(published)
			if err := pub.Publish(context.Background(), &broker.Message{Destination: topic, Key: []byte(body), Body: []byte(body)}); err != nil {
				t.Fatal(err)
			}
			published++
		}
	}
	once := func() (missing, twice int) {
		got.mu.Lock()
		defer got.mu.Unlock()
		for i := range published {
			switch got.seen[strconv.Itoa(i)] {
			case 0:
				missing++
			case 1:
			default:
				twice++
			}
		}
		return missing, twice
	}

	// Fault-free: each message once, each partition on one instance.
	publish(perPhase)
	testutil.Eventually(t, time.Minute, func() bool { m, _ := once(); return m == 0 }, "every message handled in the fault-free run")
	if _, twice := once(); twice > 0 {
		t.Errorf("fault-free run: %d messages handled more than once", twice)
	}
	owner := map[int32]string{}
	for i := range instances {
		name := "instance-" + strconv.Itoa(i)
		parts := got.partitions(name)
		if len(parts) == 0 {
			t.Errorf("fault-free run: %s handled no partition", name)
		}
		for _, p := range parts {
			if o, ok := owner[p]; ok {
				t.Errorf("fault-free run: partition %d handled by %s and %s", p, o, name)
			}
			owner[p] = name
		}
		got.resetPartitions(name)
	}
	t.Logf("fault-free: %d messages, partitions by instance %v", published, owner)
	victimParts := []int32{}
	for p, o := range owner {
		if o == "instance-0" {
			victimParts = append(victimParts, p)
		}
	}

	// Instance 0 dies mid-stream, holding a message in its handler.
	publish(perPhase / 2)
	armed.Store(true)
	var held string
	for held == "" {
		select {
		case held = <-blocked:
		default:
			publish(1)
		}
	}
	cuts[0].Sever()
	publish(perPhase - perPhase/2)
	testutil.Eventually(t, 2*time.Minute, func() bool { m, _ := once(); return m == 0 },
		fmt.Sprintf("all %d messages handled after an instance was cut", published))
	missing, twice := once()
	if missing > 0 {
		t.Errorf("lost %d messages", missing)
	}
	got.mu.Lock()
	heldTimes := got.seen[held]
	got.mu.Unlock()
	if heldTimes == 0 {
		t.Errorf("message %s, in the cut instance's handler, was not handled by another", held)
	}
	taken := map[int32]bool{}
	for _, name := range []string{"instance-1", "instance-2"} {
		for _, p := range got.partitions(name) {
			taken[p] = true
		}
	}
	for _, p := range victimParts {
		if !taken[p] {
			t.Errorf("partition %d of the cut instance was not taken over", p)
		}
	}

	spans := testutil.AssertProcessUnderSend(t, rec.Spans(), "send "+topic, "process "+topic, storedAt)
	if spans < published {
		t.Errorf("%d process spans for %d messages", spans, published)
	}
	t.Logf("%d messages; cut instance had partitions %v; %d handled more than once (not committed when it was cut); %d process spans, each the child of its send span",
		published, victimParts, twice, spans)
}
