package conformance

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	otelbaggage "go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"

	"github.com/tracebus/tracebus/baggage"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
)

// TestBaggage is the baggage suite: FastStream's baggage behaviour
// (reference/faststream.md, sections 2 and 4) and our Baggage contract,
// end to end through the Telemetry middleware and the transport. Brokers
// use middleware.NewTelemetry with W3C Trace Context and Baggage propagators
// passed explicitly and a Recorder's providers, so no global is touched.
// Batch tests need Features.Batch.
func TestBaggage(t *testing.T, s Suite) {
	tests := []struct {
		name string
		need bool
		run  func(*testing.T, Suite)
	}{
		{"GetAll", true, testBaggageGetAll},
		{"EditAcrossHops", true, testBaggageEdit},
		{"ClearAcrossHops", true, testBaggageClear},
		{"FromW3CHeaders", true, testBaggageFromW3CHeaders},
		{"OTelNative", true, testBaggageOTelNative},
		{"BatchPublishBatchConsume", s.Features.Batch, testBaggageBatchBatch},
		{"BatchPublishSingleConsume", true, testBaggageBatchSingle},
		{"SinglePublishesBatchConsume", s.Features.Batch && !s.Features.Synchronous, testBaggageSinglesBatch},
		{"Hostile", true, testBaggageHostile},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.need {
				t.Skip("transport does not declare the feature")
			}
			tc.run(t, s)
		})
	}
}

// bagW3C is the propagator the suite's brokers use.
var bagW3C = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// baggageBroker returns a broker with the Telemetry middleware over a new
// transport, recording into a Recorder of its own.
func baggageBroker(t *testing.T, s Suite, prop propagation.TextMapPropagator) *broker.Broker {
	t.Helper()
	rec := testutil.NewRecorder(t)
	return s.Broker(t, broker.WithMiddleware(middleware.NewTelemetry(
		middleware.WithPropagators(prop),
		middleware.WithTracerProvider(rec.TracerProvider),
		middleware.WithMeterProvider(rec.MeterProvider),
	)))
}

// seenBaggage is what a handler saw of its baggage.
type seenBaggage struct {
	bodies []string
	all    map[string]string
	batch  []map[string]string
	otel   map[string]string
	// get holds Get for every key of all, to check Get agrees with All.
	get map[string]string
}

// seeBaggage records the baggage a handler sees in ctx.
func seeBaggage(ctx context.Context, msgs ...*broker.Message) seenBaggage {
	bg := baggage.FromContext(ctx)
	s := seenBaggage{all: bg.All(), batch: bg.Batch(), otel: bagOTelMembers(ctx), get: map[string]string{}}
	for _, m := range msgs {
		s.bodies = append(s.bodies, string(m.Body))
	}
	for k := range s.all {
		s.get[k] = bg.Get(k)
	}
	return s
}

// bagOTelMembers returns the OpenTelemetry baggage of ctx as a map.
func bagOTelMembers(ctx context.Context) map[string]string {
	m := map[string]string{}
	for _, mem := range otelbaggage.FromContext(ctx).Members() {
		m[mem.Key()] = mem.Value()
	}
	return m
}

// check reports what differs from want in a single-message delivery: All,
// Get, the OpenTelemetry baggage and an empty Batch.
func (s seenBaggage) check(t *testing.T, want map[string]string) {
	t.Helper()
	s.checkMerged(t, want)
	if len(s.batch) != 0 {
		t.Errorf("Batch() = %v for a single-message delivery, want empty", s.batch)
	}
}

// checkMerged checks All, Get and the OpenTelemetry baggage against want.
func (s seenBaggage) checkMerged(t *testing.T, want map[string]string) {
	t.Helper()
	if !maps.Equal(s.all, want) {
		t.Errorf("All() = %v, want %v", s.all, want)
	}
	if !maps.Equal(s.get, s.all) {
		t.Errorf("Get disagrees with All: %v vs %v", s.get, s.all)
	}
	if !maps.Equal(s.otel, want) {
		t.Errorf("otel baggage.FromContext = %v, want %v", s.otel, want)
	}
}

// subscribeBaggage subscribes a handler that records its baggage.
func subscribeBaggage(t *testing.T, s Suite, b *broker.Broker, dest string) *testkit.Inbox[seenBaggage] {
	t.Helper()
	in := testkit.NewInbox[seenBaggage](s.Wait())
	if err := b.Subscribe(dest, func(ctx context.Context, m *broker.Message) error {
		in.Put(seeBaggage(ctx, m))
		return nil
	}, s.Options()...); err != nil {
		t.Fatal(err)
	}
	return in
}

// bagContext returns a background context carrying entries.
func bagContext(t *testing.T, entries map[string]string) context.Context {
	t.Helper()
	ctx, err := baggage.ContextWith(context.Background(), entries)
	if err != nil {
		t.Fatal(err)
	}
	return ctx
}

func bagPublish(t *testing.T, ctx context.Context, b *broker.Broker, dest, body string) {
	t.Helper()
	if err := b.Publish(ctx, &broker.Message{Destination: dest, Body: []byte(body)}); err != nil {
		t.Fatalf("publish to %s: %v", dest, err)
	}
}

// testBaggageGetAll is FastStream's test_get_baggage, with baggage put on
// the publishing ctx both ways: baggage.ContextWith and plain OpenTelemetry.
func testBaggageGetAll(t *testing.T, s Suite) {
	dest := s.Destination(t)
	b := baggageBroker(t, s, bagW3C)
	in := subscribeBaggage(t, s, b, dest)
	s.Start(t, b)

	want := map[string]string{"foo": "bar", "user-id": "1", "odd": "a b,c;d=é%"}
	bagPublish(t, bagContext(t, want), b, dest, "ours")
	in.Next(t).check(t, want)

	member, err := otelbaggage.NewMemberRaw("foo", "bar")
	if err != nil {
		t.Fatal(err)
	}
	ob, err := otelbaggage.New(member)
	if err != nil {
		t.Fatal(err)
	}
	bagPublish(t, otelbaggage.ContextWithBaggage(context.Background(), ob), b, dest, "otel")
	in.Next(t).check(t, map[string]string{"foo": "bar"})

	bagPublish(t, context.Background(), b, dest, "none")
	in.Next(t).check(t, map[string]string{})
}

// bagChain subscribes hop1 at dest1 and a recording handler at dest2 and starts
// the broker.
func bagChain(t *testing.T, s Suite, b *broker.Broker, dest1, dest2 string,
	hop1 func(ctx context.Context, m *broker.Message) error,
) *testkit.Inbox[seenBaggage] {
	t.Helper()
	if err := b.Subscribe(dest1, hop1, s.Options()...); err != nil {
		t.Fatal(err)
	}
	in := subscribeBaggage(t, s, b, dest2)
	s.Start(t, b)
	return in
}

// bagForward returns what hop 1 publishes to dest: a new message, or the
// consumed message itself with its headers (FastStream's handlers return
// the message they got, and the next hop must still see the edited
// baggage, not the one in the old header).
func bagForward(m *broker.Message, dest string, reuse bool) *broker.Message {
	if !reuse {
		return &broker.Message{Destination: dest, Body: m.Body}
	}
	fwd := m.Clone()
	fwd.Destination = dest
	fwd.ID = ""
	return fwd
}

// testBaggageEdit is FastStream's test_modify_baggage: hop 1 sets two keys
// and removes one, hop 2 sees exactly the edited set.
func testBaggageEdit(t *testing.T, s Suite) {
	for _, reuse := range []bool{false, true} {
		t.Run(map[bool]string{false: "NewMessage", true: "Forwarded"}[reuse], func(t *testing.T) {
			dest1, dest2 := s.Destination(t), s.Destination(t)
			b := baggageBroker(t, s, bagW3C)
			own := testkit.NewInbox[map[string]string](s.Wait())
			in := bagChain(t, s, b, dest1, dest2, func(ctx context.Context, m *broker.Message) error {
				bg := baggage.FromContext(ctx)
				if err := bg.Set("bar", "baz"); err != nil {
					return err
				}
				if err := bg.Set("baz", "bar"); err != nil {
					return err
				}
				bg.Remove("foo")
				bg.Remove("not-there")
				own.Put(bg.All())
				return b.Publish(ctx, bagForward(m, dest2, reuse))
			})
			bagPublish(t, bagContext(t, map[string]string{"foo": "bar"}), b, dest1, "start")
			want := map[string]string{"bar": "baz", "baz": "bar"}
			if got := own.Next(t); !maps.Equal(got, want) {
				t.Errorf("hop 1 All() after edits = %v, want %v", got, want)
			}
			in.Next(t).check(t, want)
		})
	}
}

// testBaggageClear is FastStream's test_clear_baggage.
func testBaggageClear(t *testing.T, s Suite) {
	for _, reuse := range []bool{false, true} {
		t.Run(map[bool]string{false: "NewMessage", true: "Forwarded"}[reuse], func(t *testing.T) {
			dest1, dest2 := s.Destination(t), s.Destination(t)
			b := baggageBroker(t, s, bagW3C)
			own := testkit.NewInbox[map[string]string](s.Wait())
			in := bagChain(t, s, b, dest1, dest2, func(ctx context.Context, m *broker.Message) error {
				bg := baggage.FromContext(ctx)
				bg.Clear()
				own.Put(bg.All())
				return b.Publish(ctx, bagForward(m, dest2, reuse))
			})
			bagPublish(t, bagContext(t, map[string]string{"foo": "bar", "bar": "baz"}), b, dest1, "start")
			if got := own.Next(t); len(got) != 0 {
				t.Errorf("hop 1 All() after Clear = %v, want empty", got)
			}
			in.Next(t).check(t, map[string]string{})
		})
	}
}

// testBaggageFromW3CHeaders is FastStream's test_get_baggage_from_headers:
// headers written by the plain W3C propagator, sent as they are by a broker
// without middleware, are read back exactly by the handler and by
// baggage.FromHeaders.
func testBaggageFromW3CHeaders(t *testing.T, s Suite) {
	dest := s.Destination(t)
	b := baggageBroker(t, s, bagW3C)
	fromHeaders := testkit.NewInbox[map[string]string](s.Wait())
	in := testkit.NewInbox[seenBaggage](s.Wait())
	if err := b.Subscribe(dest, func(ctx context.Context, m *broker.Message) error {
		fromHeaders.Put(baggage.FromHeaders(m.Headers).All())
		in.Put(seeBaggage(ctx, m))
		return nil
	}, s.Options()...); err != nil {
		t.Fatal(err)
	}
	s.Start(t, b)

	want := map[string]string{"foo": "bar", "bar": "baz", "odd": "a b,c;d=é%"}
	var h broker.Headers
	propagation.Baggage{}.Inject(bagContext(t, want), &h)
	raw := s.Broker(t)
	if err := raw.Publish(context.Background(), &broker.Message{Destination: dest, Body: []byte("w3c"), Headers: h}); err != nil {
		t.Fatal(err)
	}
	in.Next(t).check(t, want)
	if got := fromHeaders.Next(t); !maps.Equal(got, want) {
		t.Errorf("baggage.FromHeaders = %v, want %v", got, want)
	}
}

// testBaggageOTelNative checks the OpenTelemetry side: the handler's
// otelbaggage.FromContext sees the entries, ContextForPublish shows the
// view's edits to OTel-native code, and OTel baggage a handler adds to its
// ctx travels on top of the view (it wins for the keys it touches).
func testBaggageOTelNative(t *testing.T, s Suite) {
	dest1, dest2 := s.Destination(t), s.Destination(t)
	b := baggageBroker(t, s, bagW3C)
	type hop1Saw struct{ before, afterEdit map[string]string }
	own := testkit.NewInbox[hop1Saw](s.Wait())
	in := bagChain(t, s, b, dest1, dest2, func(ctx context.Context, m *broker.Message) error {
		saw := hop1Saw{before: bagOTelMembers(ctx)}
		bg := baggage.FromContext(ctx)
		if err := bg.Set("view", "v"); err != nil {
			return err
		}
		if err := bg.Set("both", "view"); err != nil {
			return err
		}
		saw.afterEdit = bagOTelMembers(baggage.ContextForPublish(ctx))
		own.Put(saw)

		// OTel-native code adds and changes members on a derived ctx.
		ob := otelbaggage.FromContext(ctx)
		for _, kv := range [][2]string{{"otel", "o"}, {"both", "otel"}} {
			mem, err := otelbaggage.NewMemberRaw(kv[0], kv[1])
			if err != nil {
				return err
			}
			if ob, err = ob.SetMember(mem); err != nil {
				return err
			}
		}
		return b.Publish(otelbaggage.ContextWithBaggage(ctx, ob), &broker.Message{Destination: dest2, Body: m.Body})
	})
	bagPublish(t, bagContext(t, map[string]string{"foo": "bar"}), b, dest1, "start")
	saw := own.Next(t)
	if want := map[string]string{"foo": "bar"}; !maps.Equal(saw.before, want) {
		t.Errorf("hop 1 otel baggage.FromContext = %v, want %v", saw.before, want)
	}
	if want := map[string]string{"foo": "bar", "view": "v", "both": "view"}; !maps.Equal(saw.afterEdit, want) {
		t.Errorf("hop 1 OTel baggage of ContextForPublish = %v, want %v", saw.afterEdit, want)
	}
	in.Next(t).check(t, map[string]string{"foo": "bar", "view": "v", "otel": "o", "both": "otel"})
}

// bagBatchKey is the key of the messages that batch tests publish, where
// the transport has keys: one key keeps them on one Kafka partition, so they
// can arrive in one batch and in order.
const bagBatchKey = "baggage-batch"

// bagMessage returns a message for a batch test.
func bagMessage(s Suite, dest, body string) *broker.Message {
	m := &broker.Message{Destination: dest, Body: []byte(body)}
	if s.Features.Keys {
		m.Key = []byte(bagBatchKey)
	}
	return m
}

// bagPublishBatch publishes n messages "0".."n-1" in one PublishBatch with ctx.
func bagPublishBatch(t *testing.T, ctx context.Context, s Suite, b *broker.Broker, dest string, n int) {
	t.Helper()
	msgs := make([]*broker.Message, n)
	for i := range msgs {
		msgs[i] = bagMessage(s, dest, fmt.Sprint(i))
	}
	if err := b.PublishBatch(ctx, msgs); err != nil {
		t.Fatalf("publish batch: %v", err)
	}
}

// subscribeBatchBaggage subscribes a batch handler of up to size messages
// that records its baggage. The batch wait is long so that messages
// published together arrive together; a batch fills up long before it.
func subscribeBatchBaggage(t *testing.T, s Suite, b *broker.Broker, dest string, size int) *testkit.Inbox[seenBaggage] {
	t.Helper()
	in := testkit.NewInbox[seenBaggage](s.Wait())
	if err := b.SubscribeBatch(dest, func(ctx context.Context, msgs []*broker.Message) error {
		in.Put(seeBaggage(ctx, msgs...))
		return nil
	}, s.Options(broker.Batch(size, 5*time.Second))...); err != nil {
		t.Fatal(err)
	}
	return in
}

// bagTakeBatches collects deliveries until n messages arrived. Transports may
// split a batch; every delivery is checked on its own, and at least one must
// hold more than one message, or merging was not exercised.
func bagTakeBatches(t *testing.T, in *testkit.Inbox[seenBaggage], n int) []seenBaggage {
	t.Helper()
	var got []seenBaggage
	total, largest := 0, 0
	for total < n {
		d := in.Next(t)
		got = append(got, d)
		total += len(d.bodies)
		largest = max(largest, len(d.bodies))
	}
	if total != n {
		t.Fatalf("got %d messages, want %d", total, n)
	}
	if largest < 2 {
		t.Errorf("every batch held one message; merging was not exercised")
	}
	return got
}

// bagCheckBatch checks one batch delivery against the baggage each message was
// sent with (by body): the list is aligned with the messages, the merged
// view is the merge in delivery order, later messages winning.
func bagCheckBatch(t *testing.T, d seenBaggage, sent map[string]map[string]string) {
	t.Helper()
	if len(d.batch) != len(d.bodies) {
		t.Fatalf("Batch() has %d entries for a batch of %d messages", len(d.batch), len(d.bodies))
	}
	merged := map[string]string{}
	for i, body := range d.bodies {
		want := sent[body]
		if !maps.Equal(d.batch[i], want) {
			t.Errorf("Batch()[%d] (message %q) = %v, want %v", i, body, d.batch[i], want)
		}
		maps.Copy(merged, want)
	}
	d.checkMerged(t, merged)
}

// testBaggageBatchBatch is FastStream's test_batch, minus the with_batch
// marker FastStream leaks: a batch of 3 published with {"foo":"bar"} and
// consumed as a batch.
func testBaggageBatchBatch(t *testing.T, s Suite) {
	dest := s.Destination(t)
	b := baggageBroker(t, s, bagW3C)
	const n = 3
	in := subscribeBatchBaggage(t, s, b, dest, n)
	s.Start(t, b)
	foo := map[string]string{"foo": "bar"}
	bagPublishBatch(t, bagContext(t, foo), s, b, dest, n)
	sent := map[string]map[string]string{"0": foo, "1": foo, "2": foo}
	for _, d := range bagTakeBatches(t, in, n) {
		bagCheckBatch(t, d, sent)
	}
}

// testBaggageBatchSingle is FastStream's
// test_batch_publish_with_single_consume: every message of a batch publish
// carries the baggage; a plain handler's Batch is empty.
func testBaggageBatchSingle(t *testing.T, s Suite) {
	dest := s.Destination(t)
	b := baggageBroker(t, s, bagW3C)
	in := subscribeBaggage(t, s, b, dest)
	s.Start(t, b)
	foo := map[string]string{"foo": "bar"}
	bagPublishBatch(t, bagContext(t, foo), s, b, dest, 3)
	for _, d := range in.TakeN(t, 3) {
		d.check(t, foo)
	}
}

// testBaggageSinglesBatch is FastStream's
// test_single_publish_with_batch_consume: two single publishes with
// different baggage (one key in common) consumed as one batch.
func testBaggageSinglesBatch(t *testing.T, s Suite) {
	dest := s.Destination(t)
	b := baggageBroker(t, s, bagW3C)
	in := subscribeBatchBaggage(t, s, b, dest, 2)
	s.Start(t, b)
	sent := map[string]map[string]string{
		"buy": {"foo": "bar", "shared": "buy"},
		"hi":  {"bar": "baz", "shared": "hi"},
	}
	for _, body := range []string{"buy", "hi"} {
		if err := b.Publish(bagContext(t, sent[body]), bagMessage(s, dest, body)); err != nil {
			t.Fatal(err)
		}
	}
	batches := bagTakeBatches(t, in, 2)
	for _, d := range batches {
		bagCheckBatch(t, d, sent)
	}
	if len(batches) == 1 {
		d := batches[0]
		later := d.bodies[1]
		if d.all["shared"] != later {
			t.Errorf("merged shared = %q, want %q from the later message", d.all["shared"], later)
		}
		if got := slices.Sorted(maps.Keys(d.all)); strings.Join(got, ",") != "bar,foo,shared" {
			t.Errorf("merged keys %v", got)
		}
	}
}
