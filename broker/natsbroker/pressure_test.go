package natsbroker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// counter sums the points of an int64 counter; 0 when it has none.
func counter(t *testing.T, rec *testutil.Recorder, name string) int64 {
	t.Helper()
	m, found := rec.Metric(t, name)
	if !found {
		return 0
	}
	sum, ok := m.Data.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("%s has data %T", name, m.Data)
	}
	var n int64
	for _, dp := range sum.DataPoints {
		n += dp.Value
	}
	return n
}

// observed returns a broker over tr with the telemetry middleware
// recording into rec and a JSON log into logs.
func observed(t *testing.T, tr driver.Transport) (*broker.Broker, *testutil.Recorder, *testutil.LogBuffer) {
	t.Helper()
	rec := testutil.NewRecorder(t)
	logs := &testutil.LogBuffer{}
	tel := middleware.NewTelemetry(middleware.WithTracerProvider(rec.TracerProvider),
		middleware.WithMeterProvider(rec.MeterProvider))
	b := broker.New(tr, broker.WithMiddleware(tel), broker.WithLogger(slog.New(slog.NewJSONHandler(logs, nil))))
	return b, rec, logs
}

// logged sums the attribute key of the log records with message msg.
func logged(t *testing.T, logs *testutil.LogBuffer, msg, key string) (lines int, sum int64) {
	t.Helper()
	for _, r := range logs.Records(t) {
		if r["msg"] != msg {
			continue
		}
		lines++
		if v, ok := r[key].(float64); ok {
			sum += int64(v)
		}
	}
	return lines, sum
}

// A core subscription (concurrency 1) whose first message fails once is
// flooded past small pending limits. Every message published is either
// handled or reported dropped: the slow_consumer count in the metric and
// the warnings equals nats.go's Subscription.Dropped exactly. Both retry
// modes are run; their figures are logged (docs/reliability.md).
func TestCoreSlowConsumerReported(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts []broker.SubscribeOption
	}{
		{"aside", nil},
		{"ordered", []broker.SubscribeOption{natsbroker.OrderedRetries()}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			srv := natstest.New(t)
			tr := connect(t, srv)
			b, rec, logs := observed(t, tr)
			const published = 20_000
			var (
				mu       sync.Mutex
				seen     = map[string]int{} // body → deliveries
				received atomic.Int64
			)
			opts := append([]broker.SubscribeOption{
				natsbroker.PendingLimits(200, -1),
				broker.RetryBackoff(broker.ConstantBackoff(100 * time.Millisecond)),
			}, mode.opts...)
			must(t, b.Subscribe("flood", func(_ context.Context, m *broker.Message) error {
				body := string(m.Body)
				mu.Lock()
				seen[body]++
				first := seen[body] == 1
				mu.Unlock()
				if body == "0" && first {
					return errors.New("first attempt fails")
				}
				received.Add(1)
				return nil
			}, opts...))
			ctx := context.Background()
			must(t, b.Start(ctx))
			t.Cleanup(func() { _ = b.Close(ctx) })

			pub := srv.Connect(t)
			payload := make([]byte, 512)
			for i := range published {
				copy(payload, strconv.Itoa(i)+"\x00")
				n := len(strconv.Itoa(i))
				if err := pub.Publish("flood", append([]byte(nil), payload[:n]...)); err != nil {
					t.Fatal(err)
				}
			}
			must(t, pub.Flush())

			dropped := func() int64 {
				return counter(t, rec, "tracebus.consumer.dropped.messages")
			}
			deadline := time.Now().Add(2 * time.Minute)
			for received.Load()+dropped() != published {
				if time.Now().After(deadline) {
					t.Fatalf("received %d + dropped %d != published %d", received.Load(), dropped(), published)
				}
				waitTick()
			}
			if want := int64(natsbroker.CoreDropped(tr, "flood")); dropped() != want {
				t.Errorf("dropped metric %d, nats.go Dropped() %d", dropped(), want)
			}
			mu.Lock()
			first := seen["0"]
			mu.Unlock()
			if first != 2 {
				t.Errorf("the failing message was handled %d times, want 2", first)
			}
			total := dropped()
			cctx, cancel := context.WithTimeout(ctx, wait)
			defer cancel()
			must(t, b.Close(cctx))
			if dropped() != total {
				t.Errorf("dropped grew to %d after the count was complete (%d)", dropped(), total)
			}
			lines, sum := logged(t, logs, "tracebus: transport dropped messages before delivery", "messages")
			if sum != total || (total > 0) != (lines > 0) {
				t.Errorf("warnings: %d lines for %d messages, metric %d", lines, sum, total)
			}
			t.Logf("%s: published %d, handled %d, dropped %d (%d warning lines)", mode.name, published, received.Load(), total, lines)
		})
	}
}

// waitTick is the poll interval of the tests' condition loops.
func waitTick() { <-time.After(20 * time.Millisecond) }

// InProgress on core NATS says it is not supported.
func TestCoreInProgressUnsupported(t *testing.T) {
	srv := natstest.New(t)
	errs := testkit.NewInbox[error](wait)
	b := started(t, connect(t, srv), func(b *broker.Broker) {
		must(t, b.Subscribe("progress", func(ctx context.Context, _ *broker.Message) error {
			errs.Put(broker.SettlerFromContext(ctx).InProgress(ctx))
			return nil
		}))
	})
	publishOK(t, b, "progress", "x")
	if err := errs.Next(t); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("InProgress on core NATS: %v", err)
	}
}

// A handler longer than AckWait and than the maximum handling time keeps
// its message by calling InProgress: not redelivered, not given up.
func TestInProgressExtendsDeadline(t *testing.T) {
	srv := natstest.New(t)
	createStream(t, srv, jetStreamClient(t, srv), "WPI", "wpi")
	// An AckWait long enough that a handler starved of CPU on a loaded
	// machine still reports progress in time (at 300 ms a delayed tick
	// let the server redeliver), with progress six times per AckWait.
	const ackWait = 1500 * time.Millisecond
	var calls atomic.Int32
	in := testkit.NewInbox[string](wait)
	progressErrs := testkit.NewInbox[error](wait)
	b, rec, _ := observed(t, connect(t, srv, natsbroker.WithJetStream()))
	must(t, b.Subscribe("wpi", func(ctx context.Context, m *broker.Message) error {
		if string(m.Body) == "long" {
			calls.Add(1)
			// Three AckWaits and one and a half maximum handling times
			// of work, reporting progress six times per AckWait.
			end := time.After(3 * ackWait)
			tick := time.NewTicker(ackWait / 6)
			defer tick.Stop()
		work:
			for {
				select {
				case <-end:
					break work
				case <-tick.C:
					if err := broker.SettlerFromContext(ctx).InProgress(ctx); err != nil {
						progressErrs.Put(err)
					}
				}
			}
		}
		in.Put(string(m.Body))
		return nil
	}, broker.Name("wpi"), broker.Concurrency(2), natsbroker.MaxHandlingTime(2*ackWait),
		natsbroker.ConfigureConsumer(func(c *jetstream.ConsumerConfig) { c.AckWait = ackWait })))
	ctx := context.Background()
	must(t, b.Start(ctx))
	t.Cleanup(func() { _ = b.Close(ctx) })
	publishOK(t, b, "wpi", "long")
	if v := in.Next(t); v != "long" {
		t.Fatalf("got %q", v)
	}
	publishOK(t, b, "wpi", "marker")
	if v := in.Next(t); v != "marker" {
		t.Fatalf("got %q before the marker", v)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("long message handled %d times, want 1", n)
	}
	if progressErrs.Len() != 0 {
		t.Errorf("InProgress failed: %v", progressErrs.Next(t))
	}
	if n := counter(t, rec, "tracebus.consumer.hung.messages"); n != 0 {
		t.Errorf("hung = %d", n)
	}
}

// A handler that hangs past the maximum handling time: its message goes
// back to the server and reaches the other worker, the hang is counted and
// logged, the hung handler's ctx is cancelled and its late ack ignored.
func TestHungHandlerGivenBack(t *testing.T) {
	srv := natstest.New(t)
	createStream(t, srv, jetStreamClient(t, srv), "HUNG", "hung")
	release := make(chan struct{})
	type got struct {
		count int
		id    string
	}
	in := testkit.NewInbox[got](wait)
	lateErr := make(chan error, 1)
	cancelled := make(chan bool, 1)
	b, rec, logs := observed(t, connect(t, srv, natsbroker.WithJetStream()))
	must(t, b.Subscribe("hung", func(ctx context.Context, m *broker.Message) error {
		in.Put(got{m.Delivery.DeliveryCount, m.ID})
		if m.Delivery.DeliveryCount == 1 {
			<-release // hangs, deaf to its ctx, until the test lets it go
			cancelled <- ctx.Err() != nil
			lateErr <- broker.SettlerFromContext(ctx).Ack(ctx)
		}
		return nil
	}, broker.Name("hung"), broker.Concurrency(2), natsbroker.MaxHandlingTime(300*time.Millisecond)))
	ctx := context.Background()
	must(t, b.Start(ctx))
	t.Cleanup(func() { _ = b.Close(ctx) })
	must(t, b.Publish(ctx, &broker.Message{Destination: "hung", ID: "order-1", Body: []byte("x")}))
	first, second := in.Next(t), in.Next(t)
	if first.count != 1 || second.count != 2 || second.id != "order-1" {
		t.Fatalf("deliveries %+v, %+v; want order-1 twice, counts 1 and 2", first, second)
	}
	if n := counter(t, rec, "tracebus.consumer.hung.messages"); n != 1 {
		t.Errorf("hung = %d, want 1", n)
	}
	var warned bool
	for _, r := range logs.Records(t) {
		if r["level"] == "WARN" && r["subject"] == "hung" && r["consumer"] == "hung" && r["message_id"] == "order-1" {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning with subject, consumer and message id in %s", logs.String())
	}
	close(release)
	if !<-cancelled {
		t.Error("the hung handler's ctx was not cancelled")
	}
	if err := <-lateErr; !errors.Is(err, natsbroker.ErrMaxHandlingTime) {
		t.Errorf("late ack: %v, want ErrMaxHandlingTime", err)
	}
	// The late ack changed nothing: the redelivery was acked, and nothing
	// else comes.
	publishOK(t, b, "hung", "marker")
	if v := in.Next(t); v.count != 1 || v.id == "order-1" {
		t.Errorf("got %+v, want the marker", v)
	}
	if n := counter(t, rec, "tracebus.consumer.hung.messages"); n != 1 {
		t.Errorf("hung = %d after the release, want 1", n)
	}
}

// The consumer the transport creates bounds redelivery on the server:
// MaxDeliver follows MaxAttempts plus a margin, unless the user configured
// it.
func TestMaxDeliverFollowsMaxAttempts(t *testing.T) {
	srv := natstest.New(t)
	js := jetStreamClient(t, srv)
	createStream(t, srv, js, "MD", "md.>")
	b := started(t, connect(t, srv, natsbroker.WithJetStream()), func(b *broker.Broker) {
		h := func(context.Context, *broker.Message) error { return nil }
		must(t, b.Subscribe("md.default", h, broker.Name("md-default")))
		must(t, b.Subscribe("md.four", h, broker.Name("md-four"), broker.MaxAttempts(4)))
		must(t, b.Subscribe("md.own", h, broker.Name("md-own"), broker.MaxAttempts(4),
			natsbroker.ConfigureConsumer(func(c *jetstream.ConsumerConfig) { c.MaxDeliver = 2 })))
	})
	_ = b
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for name, want := range map[string]int{
		"md-default": 3 + 5, // the broker's default MaxAttempts, and the margin
		"md-four":    4 + 5,
		"md-own":     2,
	} {
		c, err := js.Consumer(ctx, "MD", name)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.CachedInfo().Config.MaxDeliver; got != want {
			t.Errorf("%s: MaxDeliver %d, want %d", name, got, want)
		}
	}
}

// A JetStream message reaches the consumer's MaxDeliver before the broker
// gave up on it (here: a MaxDeliver below MaxAttempts, set with
// ConfigureConsumer, and a handler that never settles; in production,
// handlers that crash or hang every time); the server stops redelivering
// it, and the transport says so: a warning naming the stream sequence, and
// the dropped counter with tracebus.drop.reason=max_deliveries.
func TestMaxDeliveriesReported(t *testing.T) {
	srv := natstest.New(t)
	js := jetStreamClient(t, srv)
	createStream(t, srv, js, "MAXD", "maxd")
	tr := connect(t, srv, natsbroker.WithJetStream())
	b, rec, logs := observed(t, tr)
	var deliveries atomic.Int32
	must(t, b.Subscribe("maxd", func(context.Context, *broker.Message) error {
		deliveries.Add(1)
		return nil // settles nothing
	}, broker.ManualAck(), natsbroker.ConfigureConsumer(func(c *jetstream.ConsumerConfig) {
		c.MaxDeliver, c.AckWait = 2, time.Second
	})))
	ctx := context.Background()
	must(t, b.Start(ctx))
	t.Cleanup(func() { _ = b.Close(ctx) })
	publishOK(t, b, "maxd", "never settled")

	testutil.Eventually(t, wait, func() bool {
		return counter(t, rec, "tracebus.consumer.dropped.messages") == 1
	}, "the message past MaxDeliver counted as dropped")
	m, _ := rec.Metric(t, "tracebus.consumer.dropped.messages")
	dp := m.Data.(metricdata.Sum[int64]).DataPoints[0]
	if v, _ := dp.Attributes.Value("tracebus.drop.reason"); v.AsString() != "max_deliveries" {
		t.Errorf("drop reason %q, want max_deliveries", v.AsString())
	}
	if n := deliveries.Load(); n != 2 {
		t.Errorf("%d deliveries, want MaxDeliver's 2", n)
	}
	var warned bool
	for _, r := range logs.Records(t) {
		if strings.Contains(fmt.Sprint(r["msg"]), "MaxDeliver") {
			warned = r["stream_seq"] == float64(1) && r["deliveries"] == float64(2) && r["stream"] == "MAXD"
		}
	}
	if !warned {
		t.Errorf("no warning naming stream MAXD, sequence 1 and 2 deliveries in:\n%s", logs.String())
	}
}
