package natsbroker_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// byInstance records which instance of a service handled which message.
type byInstance struct {
	mu    sync.Mutex
	times map[string]int // body -> times handled, over all instances
	per   []int          // instance -> messages handled
}

func newByInstance(n int) *byInstance {
	return &byInstance{times: map[string]int{}, per: make([]int, n)}
}

func (h *byInstance) add(instance int, body string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.times[body]++
	h.per[instance]++
}

func (h *byInstance) snapshot() (times map[string]int, per []int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	times = make(map[string]int, len(h.times))
	for k, v := range h.times {
		times[k] = v
	}
	return times, append([]int(nil), h.per...)
}

// missingOrTwice counts the bodies of want never handled and those handled
// more than once.
func (h *byInstance) missingOrTwice(want []string) (missing, twice int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range want {
		switch n := h.times[w]; {
		case n == 0:
			missing++
		case n > 1:
			twice++
		}
	}
	return missing, twice
}

// messageID returns a span's messaging.message.id attribute.
func messageID(s sdktrace.ReadOnlySpan) string {
	for _, a := range s.Attributes() {
		if a.Key == semconv.MessagingMessageIDKey {
			return a.Value.AsString()
		}
	}
	return ""
}

// TestScaledOutJetStream runs three instances of one service on a
// three-node cluster, each with its own connection (through a different
// node) and broker, sharing one durable consumer of an R3 stream, with the
// telemetry middleware recording into one in-memory exporter. Fault-free,
// every message is handled exactly once and every instance takes a share.
// Then one instance's connections are cut mid-stream (no Close, no acks of
// what it held): the other two take its messages over after their
// AckWait; nothing is lost. Every process span, whichever instance made
// it, is the child of its message's send span.
func TestScaledOutJetStream(t *testing.T) {
	const instances = 3
	perPhase := testkit.Scale(150, 10_000)
	cluster := natstest.NewCluster(t, 3)
	admin, err := jetstream.New(cluster.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.CreateStream(ctx, jetstream.StreamConfig{
		Name: "SCALED", Subjects: []string{"scaled.>"}, Storage: jetstream.FileStorage, Replicas: 3,
	}); err != nil {
		t.Fatalf("create R3 stream: %v", err)
	}
	waitStreamLeader(t, cluster, admin, "SCALED")

	rec := testutil.NewRecorder(t)
	telemetry := func() broker.Option {
		return broker.WithMiddleware(middleware.NewTelemetry(
			middleware.WithTracerProvider(rec.TracerProvider),
			middleware.WithMeterProvider(rec.MeterProvider),
			middleware.WithPropagators(propagation.TraceContext{}),
		))
	}
	newInstance := func(node int, opts ...natsgo.Option) *broker.Broker {
		nc := cluster.ConnectVia(t, node, append([]natsgo.Option{
			natsgo.Name(fmt.Sprintf("scaled-%d", node)),
			natsgo.ErrorHandler(func(*natsgo.Conn, *natsgo.Subscription, error) {}),
		}, opts...)...)
		b := broker.New(newTransport(t, nc, natsbroker.WithJetStream("scaled.>")), telemetry())
		t.Cleanup(func() {
			// A cut instance cannot drain; its Close error is expected.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = b.Close(ctx)
		})
		return b
	}

	got := newByInstance(instances)
	cuts := make([]*natstest.CutDialer, instances)
	// Once the victim is armed, its handler blocks on the next message
	// until the test ends: the instance dies with a message in its handler
	// and more in its pull buffer, none of them acknowledged.
	var armed atomic.Bool
	blocked, release := make(chan string, 1), make(chan struct{})
	defer close(release)
	for i := range instances {
		cuts[i] = &natstest.CutDialer{}
		b := newInstance(i, natsgo.SetCustomDialer(cuts[i]))
		// Small pulls spread the stream over the instances; a short
		// AckWait hands the cut instance's messages to the others soon.
		if err := b.Subscribe("scaled.jobs", func(_ context.Context, m *broker.Message) error {
			if i == 0 && armed.Load() {
				select {
				case blocked <- string(m.Body):
				default:
				}
				<-release
				return nil // its ack cannot reach the server: not counted
			}
			got.add(i, string(m.Body))
			return nil
		}, broker.Group("workers"),
			natsbroker.ConsumeOptions(jetstream.PullMaxMessages(8)),
			natsbroker.ConfigureConsumer(func(c *jetstream.ConsumerConfig) { c.AckWait = 2 * time.Second }),
		); err != nil {
			t.Fatal(err)
		}
		if err := b.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	pub := newInstance(0)
	if err := pub.Start(context.Background()); err != nil {
		t.Fatal(err)
	}

	var want []string
	publish := func(n int) {
		t.Helper()
		for range n {
			body := fmt.Sprintf("m-%d", len(want))
			testutil.Eventually(t, time.Minute, func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				return pub.Publish(ctx, &broker.Message{Destination: "scaled.jobs", ID: body, Body: []byte(body)}) == nil
			}, "publish "+body)
			want = append(want, body)
		}
	}

	// Fault-free: each message once, every instance takes a share.
	publish(perPhase)
	testutil.Eventually(t, time.Minute, func() bool { m, _ := got.missingOrTwice(want); return m == 0 },
		"every message handled in the fault-free run")
	if _, twice := got.missingOrTwice(want); twice > 0 {
		t.Errorf("fault-free run: %d messages handled more than once", twice)
	}
	_, per := got.snapshot()
	for i, n := range per {
		if n == 0 {
			t.Errorf("fault-free run: instance %d handled nothing (shares %v)", i, per)
		}
	}
	t.Logf("fault-free: %d messages, shares %v", len(want), per)

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
	cuts[0].Cut()
	_, atCut := got.snapshot()
	publish(perPhase - perPhase/2)
	testutil.Eventually(t, 2*time.Minute, func() bool { m, _ := got.missingOrTwice(want); return m == 0 },
		"every message handled after an instance was cut")
	missing, twice := got.missingOrTwice(want)
	if missing > 0 {
		t.Errorf("lost %d messages", missing)
	}
	_, after := got.snapshot()
	if after[1]+after[2] == atCut[1]+atCut[2] {
		t.Error("the other instances handled nothing after the cut")
	}

	spans := testutil.AssertProcessUnderSend(t, rec.Spans(), "send scaled.jobs", "process scaled.jobs", messageID)
	if spans < len(want) {
		t.Errorf("%d process spans for %d messages", spans, len(want))
	}
	if times, _ := got.snapshot(); times[held] == 0 {
		t.Errorf("message %s, in the cut instance's handler, was not handled by another", held)
	}
	t.Logf("%d messages; shares at the cut %v, at the end %v; %d handled more than once; %d process spans, each the child of its send span",
		len(want), atCut, after, twice, spans)
}
