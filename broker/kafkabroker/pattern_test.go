package kafkabroker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/kafkatest"
)

// received collects the topics and bodies a handler saw.
type received struct {
	mu   sync.Mutex
	byTo map[string][]string
}

func (r *received) add(m *broker.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byTo == nil {
		r.byTo = map[string][]string{}
	}
	r.byTo[m.Destination] = append(r.byTo[m.Destination], string(m.Body))
}

func (r *received) of(topic string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.byTo[topic]...)
}

func (r *received) topics() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for k := range r.byTo {
		out = append(out, k)
	}
	return out
}

// forGroups runs test once without a group and once with group.
func forGroups(t *testing.T, group string, test func(t *testing.T, group string)) {
	t.Run("no group", func(t *testing.T) { test(t, "") })
	t.Run("group", func(t *testing.T) { test(t, group) })
}

// subscribePattern starts a broker over c, with a metadata max age of 100ms
// and brokerOpts, subscribed to pattern with Pattern (and group, unless it
// is empty), and returns what it receives.
func subscribePattern(t *testing.T, c *kafkatest.Cluster, pattern, group string, brokerOpts ...broker.Option) (*broker.Broker, *received) {
	t.Helper()
	tr := newTransport(t, c, kafkabroker.WithMetadataMaxAge(100*time.Millisecond))
	b := broker.New(tr, brokerOpts...)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = b.Close(ctx)
	})
	got := new(received)
	opts := []broker.SubscribeOption{kafkabroker.Pattern()}
	if group != "" {
		opts = append(opts, broker.Group(group))
	}
	if err := b.Subscribe(pattern, func(_ context.Context, m *broker.Message) error {
		got.add(m)
		return nil
	}, opts...); err != nil {
		t.Fatal(err)
	}
	start(t, b)
	return b, got
}

// A pattern subscription consumes the topics that match when it starts and
// one created afterwards, within the metadata refresh; a topic whose name
// only contains a match is not read. Spans are named after the pattern and
// carry the concrete topic and the pattern as template. With a group, the
// offsets of every topic are committed to the group.
func TestPatternPicksUpTopics(t *testing.T) {
	forGroups(t, "pattern-group", func(t *testing.T, group string) {
		c := kafkatest.New(t)
		prefix := topicName(t)
		a, bt, later, other := prefix+"-a", prefix+"-b", prefix+"-c", "x"+prefix+"-a"
		for _, topic := range []string{a, bt, other} {
			c.CreateTopic(t, topic, 2)
		}
		pattern := regexp.QuoteMeta(prefix) + `-[a-z]{1}`
		rec := testutil.NewRecorder(t)
		b, got := subscribePattern(t, c, pattern, group, broker.WithMiddleware(middleware.NewTelemetry(
			middleware.WithTracerProvider(rec.TracerProvider), middleware.WithMeterProvider(rec.MeterProvider))))
		publish := func(topic, body string) {
			t.Helper()
			if err := b.Publish(context.Background(), &broker.Message{Destination: topic, Body: []byte(body)}); err != nil {
				t.Fatalf("publish to %s: %v", topic, err)
			}
		}
		// A group may still be joining: it starts at the first offset,
		// so what is published meanwhile is consumed.
		publish(a, "a1")
		publish(bt, "b1")
		publish(other, "not matched")
		eventually(t, func() bool { return len(got.of(a)) == 1 && len(got.of(bt)) == 1 }, "a1 and b1 received")

		created := time.Now()
		c.CreateTopic(t, later, 3)
		publish(later, "c1")
		eventually(t, func() bool { return len(got.of(later)) == 1 }, "c1 from the topic created later received")
		t.Logf("a topic created later was consumed %v after its creation (metadata max age 100ms)", time.Since(created).Round(time.Millisecond))
		// Both old topics are still read after the new one joined.
		publish(a, "a2")
		publish(bt, "b2")
		eventually(t, func() bool { return len(got.of(a)) >= 2 && len(got.of(bt)) >= 2 }, "a2 and b2 received")
		if v := got.of(other); len(v) != 0 {
			t.Fatalf("read %q from %s, which the anchored pattern does not match", v, other)
		}
		for _, topic := range got.topics() {
			if !strings.HasPrefix(topic, prefix) {
				t.Fatalf("delivered from %s", topic)
			}
		}

		spans := rec.SpansByName("process " + pattern)
		var forLater sdktrace.ReadOnlySpan
		for _, s := range spans {
			if attr(s, "messaging.destination.name") == later {
				forLater = s
			}
		}
		if forLater == nil {
			t.Fatalf("no span %q of topic %s; spans:\n%s", "process "+pattern, later, testutil.Tree(rec.Spans()))
		}
		if tmpl := attr(forLater, "messaging.destination.template"); tmpl != pattern {
			t.Fatalf("template %q, want %q", tmpl, pattern)
		}
		if group == "" {
			return
		}
		eventually(t, func() bool {
			return committed(t, c, group, later, 3)[0]+committed(t, c, group, later, 3)[1]+committed(t, c, group, later, 3)[2] == 1
		}, "the new topic's offset committed to the group")
	})
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if kv.Key == attribute.Key(key) {
			return kv.Value.AsString()
		}
	}
	return ""
}

// Expressions that do not compile, that would escape the anchors, or that
// are too long fail Subscribe with ErrInvalid quoting them; what RE2
// accepts, catastrophic for a backtracking engine or not, is fine.
func TestPatternHostile(t *testing.T) {
	tr, err := kafkabroker.New(kafkabroker.WithSeedBrokers("localhost:1")) // never dialled
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(tr)
	defer b.Close(context.Background())
	noop := func(context.Context, *broker.Message) error { return nil }
	for _, expr := range []string{"(", "a)|(b", "[z-a]", "x{1001}", "\xff", strings.Repeat("a", 1025)} {
		err := b.Subscribe(expr, noop, kafkabroker.Pattern())
		if !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("pattern %.20q: %v, want ErrInvalid", expr, err)
			continue
		}
		want := fmt.Sprintf("%q", expr)
		if len(expr) > 64 {
			want = fmt.Sprintf("%q…", expr[:64])
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("pattern %.20q: error %q does not quote it", expr, err)
		}
	}
	for _, expr := range []string{"(a*)*b", "(a|a)*c", "orders-[0-9]{2}", `logs\..+`, "a{1000}"} {
		if err := b.Subscribe(expr, noop, kafkabroker.Pattern()); err != nil {
			t.Errorf("pattern %q: %v", expr, err)
		}
	}
	// A dead-letter topic the pattern matches would feed the subscription
	// its own dead letters: refused, naming both; one outside it is fine.
	err = b.Subscribe("orders-.*", noop, kafkabroker.Pattern(), broker.DeadLetter("orders-dlq"))
	if !errors.Is(err, broker.ErrInvalid) || !strings.Contains(err.Error(), "orders-dlq") {
		t.Errorf("Pattern with a dead-letter topic it matches: %v, want ErrInvalid naming it", err)
	}
	if err := b.Subscribe("orders-.*", noop, kafkabroker.Pattern(), broker.DeadLetter("dlq-orders")); err != nil {
		t.Errorf("Pattern with a dead-letter topic outside it: %v", err)
	}
	// Partitions of one topic, not of a pattern.
	if err := b.Subscribe("orders-.*", noop, kafkabroker.Pattern(), kafkabroker.Partitions(0)); !errors.Is(err, broker.ErrInvalid) {
		t.Errorf("Pattern with Partitions: %v, want ErrInvalid", err)
	}
}

// A topic the pattern matched is deleted: without a group its readers stop;
// with one the member joins the group again without it. Either way the
// other topic is still consumed.
func TestPatternTopicDeleted(t *testing.T) {
	forGroups(t, "pattern-deleted", func(t *testing.T, group string) {
		c := kafkatest.New(t)
		prefix := topicName(t)
		keep, gone := prefix+"-keep", prefix+"-gone"
		c.CreateTopic(t, keep, 1)
		c.CreateTopic(t, gone, 1)
		var logs testutil.LogBuffer
		b, got := subscribePattern(t, c, regexp.QuoteMeta(prefix)+"-.*", group, broker.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
		for _, topic := range []string{keep, gone} {
			if err := b.Publish(context.Background(), &broker.Message{Destination: topic, Body: []byte("before")}); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, func() bool { return len(got.of(keep)) == 1 && len(got.of(gone)) == 1 }, "both topics consumed")

		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		res, err := c.Client().DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{gone}})
		if err != nil || res.Errors[gone] != nil {
			t.Fatalf("delete %s: %v %v", gone, err, res.Errors)
		}
		want := "kafkabroker: topic deleted, no longer read"
		if group != "" {
			want = "kafkabroker: the topics the pattern matches changed, joining the group again"
		}
		eventually(t, func() bool { return strings.Contains(logs.String(), want) }, "log %q", want)
		if err := b.Publish(context.Background(), &broker.Message{Destination: keep, Body: []byte("after")}); err != nil {
			t.Fatal(err)
		}
		eventually(t, func() bool { return slices.Contains(got.of(keep), "after") }, "the remaining topic still consumed")
	})
}
