package natsbroker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tracebus/tracebus/baggage"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/asyncapi"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/natstest"
	"go.opentelemetry.io/otel/attribute"
	otelbaggage "go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// update is what a watch handler saw of one message.
type update struct {
	key, body, op    string
	rev              uint64
	deleted          bool
	bucket, stream   string
	sub, id          string
	count            int
	hasTime, hasBody bool
	contentType      string
}

func (u update) String() string {
	if u.deleted {
		return u.key + " " + u.op
	}
	return u.key + "=" + u.body
}

// updates collects what a handler saw, in order.
type updates struct {
	mu  sync.Mutex
	got []update
	ch  chan struct{} // signalled on every update
}

func newUpdates() *updates { return &updates{ch: make(chan struct{}, 1)} }

func (u *updates) handler(_ context.Context, m *broker.Message) error {
	u.add(m)
	return nil
}

func (u *updates) add(m *broker.Message) {
	u.mu.Lock()
	u.got = append(u.got, update{
		key: m.Destination, body: string(m.Body), op: m.Headers.Get("KV-Operation"),
		rev: m.Delivery.Sequence, deleted: m.Delivery.Deleted, bucket: m.Delivery.Bucket,
		stream: m.Delivery.Stream, sub: m.Delivery.Subscription, id: m.ID, count: m.Delivery.DeliveryCount,
		hasTime: !m.Delivery.Timestamp.IsZero(), hasBody: m.Body != nil,
		contentType: m.Headers.Get("Content-Type"),
	})
	u.mu.Unlock()
	select {
	case u.ch <- struct{}{}:
	default:
	}
}

func (u *updates) snapshot() []update {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]update(nil), u.got...)
}

// wait waits until n updates were seen and returns them.
func (u *updates) wait(t *testing.T, n int) []update {
	t.Helper()
	deadline := time.After(2 * time.Minute) // a restart is noticed after ~10 s, more under load
	for {
		if got := u.snapshot(); len(got) >= n {
			return got
		}
		select {
		case <-u.ch:
		case <-deadline:
			t.Fatalf("want %d updates, got %v", n, u.snapshot())
		}
	}
}

// strings renders updates for comparison.
func renderUpdates(us []update) string {
	s := make([]string, len(us))
	for i, u := range us {
		s[i] = u.String()
	}
	return strings.Join(s, ", ")
}

func createKV(t *testing.T, js jetstream.JetStream, bucket string) jetstream.KeyValue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, History: 10, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func put(t *testing.T, kv jetstream.KeyValue, key, value string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rev, err := kv.PutString(ctx, key, value)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// watchBroker starts a broker over a new transport to srv whose only
// subscription is made by subscribe, and closes it when the test ends.
func watchBroker(t *testing.T, srv *natstest.Server, subscribe func(b *broker.Broker) error, opts ...broker.Option) *broker.Broker {
	t.Helper()
	b := broker.New(connect(t, srv), opts...)
	return startWatch(t, b, subscribe)
}

func startWatch(t *testing.T, b *broker.Broker, subscribe func(b *broker.Broker) error) *broker.Broker {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	if err := subscribe(b); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWatchKV: the current value of every matching key first, then puts,
// updates, deletes and purges in revision order, each with its operation
// and facts; keys outside the pattern are not delivered.
func TestWatchKV(t *testing.T) {
	srv := natstest.New(t)
	js := jetStreamClient(t, srv)
	kv := createKV(t, js, "settings")
	ctx := context.Background()
	rev := map[string]uint64{}
	rev["a1"] = put(t, kv, "config.a", "1")
	put(t, kv, "other.x", "not watched")

	got := newUpdates()
	watchBroker(t, srv, func(b *broker.Broker) error {
		return b.Subscribe("config.*", got.handler, natsbroker.WatchKV("settings"))
	})
	got.wait(t, 1)

	rev["b2"] = put(t, kv, "config.b", "2")
	rev["a3"] = put(t, kv, "config.a", "3")
	if err := kv.Delete(ctx, "config.b"); err != nil {
		t.Fatal(err)
	}
	put(t, kv, "other.y", "not watched")
	if err := kv.Purge(ctx, "config.a"); err != nil {
		t.Fatal(err)
	}
	put(t, kv, "config.deep.er", "not matched by *")
	rev["c4"] = put(t, kv, "config.c", "4")

	us := got.wait(t, 6)
	want := "config.a=1, config.b=2, config.a=3, config.b DEL, config.a PURGE, config.c=4"
	if r := renderUpdates(us); r != want {
		t.Fatalf("updates:\n got %s\nwant %s", r, want)
	}
	for i, u := range us {
		if u.bucket != "settings" || u.stream != "KV_settings" || u.sub != "config.*" || u.count != 1 || !u.hasTime {
			t.Errorf("update %d (%s): facts %+v", i, u, u)
		}
		if i > 0 && u.rev <= us[i-1].rev {
			t.Errorf("update %d (%s): revision %d after %d", i, u, u.rev, us[i-1].rev)
		}
		if u.deleted != (u.op != "") || u.deleted && u.hasBody {
			t.Errorf("update %d (%s): deleted %v, operation %q, body %v", i, u, u.deleted, u.op, u.hasBody)
		}
	}
	for i, k := range map[int]string{0: "a1", 1: "b2", 2: "a3", 5: "c4"} {
		if us[i].rev != rev[k] {
			t.Errorf("update %d (%s): revision %d, Put returned %d", i, us[i], us[i].rev, rev[k])
		}
	}
}

type setting struct {
	Level int `json:"level"`
}

// Validate refuses the zero setting, which a deletion still delivers: a
// deletion's zero value is not validated.
func (s setting) Validate() error {
	if s.Level <= 0 {
		return errors.New("level must be positive")
	}
	return nil
}

// TestWatchKVTyped: values decode as T, a deletion gives T's zero value
// (not validated), and a value that does not decode is dead-lettered while the watch goes
// on with the next update.
func TestWatchKVTyped(t *testing.T) {
	srv := natstest.New(t)
	kv := createKV(t, jetStreamClient(t, srv), "typed")
	type seenSetting struct {
		key     string
		v       setting
		deleted bool
	}
	var (
		mu    sync.Mutex
		typed []seenSetting
	)
	dead := newUpdates()
	watchBroker(t, srv, func(b *broker.Broker) error {
		if err := b.Subscribe("dead.settings", dead.handler); err != nil {
			return err
		}
		return broker.Handle(b, "app.>", func(ctx context.Context, v setting) error {
			m := broker.MessageFromContext(ctx)
			mu.Lock()
			typed = append(typed, seenSetting{m.Destination, v, m.Delivery.Deleted})
			mu.Unlock()
			return nil
		}, natsbroker.WatchKV("typed"), broker.DeadLetter("dead.settings"))
	})
	put(t, kv, "app.a", `{"level":3}`)
	put(t, kv, "app.bad", `not json`)
	if err := kv.Delete(context.Background(), "app.a"); err != nil {
		t.Fatal(err)
	}
	put(t, kv, "app.b", `{"level":5}`)

	testutil.Eventually(t, 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(typed) == 3
	}, "three typed updates")
	want := []seenSetting{{"app.a", setting{3}, false}, {"app.a", setting{}, true}, {"app.b", setting{5}, false}}
	mu.Lock()
	if fmt.Sprint(typed) != fmt.Sprint(want) {
		t.Errorf("typed updates %v, want %v", typed, want)
	}
	mu.Unlock()
	d := dead.wait(t, 1)
	if d[0].body != "not json" {
		t.Errorf("dead letter %+v, want the undecodable value", d[0])
	}
}

// TestWatchKVEnvelope: a handler of Envelope[T] reads the operation from
// the headers NATS wrote, and a deletion is an envelope with T's zero value.
func TestWatchKVEnvelope(t *testing.T) {
	srv := natstest.New(t)
	kv := createKV(t, jetStreamClient(t, srv), "envelopes")
	var (
		mu  sync.Mutex
		got []string
	)
	watchBroker(t, srv, func(b *broker.Broker) error {
		return broker.Handle(b, ">", func(ctx context.Context, e broker.Envelope[setting]) error {
			mu.Lock()
			got = append(got, fmt.Sprintf("%s %d op=%q", broker.MessageFromContext(ctx).Destination, e.Value.Level, e.Headers.Get("KV-Operation")))
			mu.Unlock()
			return nil
		}, natsbroker.WatchKV("envelopes"), broker.DeadLetter("dead.envelopes"))
	})
	put(t, kv, "app.a", `{"level":3}`)
	if err := kv.Purge(context.Background(), "app.a"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 2
	}, "two updates")
	mu.Lock()
	defer mu.Unlock()
	if want := `[app.a 3 op="" app.a 0 op="PURGE"]`; fmt.Sprint(got) != want {
		t.Errorf("updates %v, want %s", got, want)
	}
}

// TestWatchKVRetries: a handler error is retried in place per the
// subscription's policy, with DeliveryCount growing, and the updates
// behind it wait their turn; one that keeps failing is dead-lettered.
func TestWatchKVRetries(t *testing.T) {
	srv := natstest.New(t)
	kv := createKV(t, jetStreamClient(t, srv), "retries")
	got, dead := newUpdates(), newUpdates()
	watchBroker(t, srv, func(b *broker.Broker) error {
		if err := b.Subscribe("dead.retries", dead.handler); err != nil {
			return err
		}
		// "*", not ">": the broker refuses a dead-letter subject its
		// pattern covers, not knowing that a watch pattern names keys.
		return b.Subscribe("*", func(ctx context.Context, m *broker.Message) error {
			got.add(m)
			switch {
			case m.Destination == "flaky" && m.Delivery.DeliveryCount < 3:
				return errors.New("not yet")
			case m.Destination == "broken":
				return errors.New("never")
			}
			return nil
		}, natsbroker.WatchKV("retries"), broker.MaxAttempts(3),
			broker.RetryBackoff(broker.ConstantBackoff(time.Millisecond)), broker.DeadLetter("dead.retries"))
	})
	put(t, kv, "flaky", "f")
	put(t, kv, "broken", "b")
	put(t, kv, "after", "a")
	us := got.wait(t, 7)
	var seq []string
	for _, u := range us {
		seq = append(seq, fmt.Sprintf("%s#%d", u.key, u.count))
	}
	if s, want := strings.Join(seq, " "), "flaky#1 flaky#2 flaky#3 broken#1 broken#2 broken#3 after#1"; s != want {
		t.Fatalf("deliveries %s, want %s", s, want)
	}
	if d := dead.wait(t, 1); d[0].body != "b" {
		t.Errorf("dead letter %+v, want broken's value", d[0])
	}
}

// TestWatchKVResumes: when a watcher ends (nats.go gives up on its
// consumer), the subscription watches again from the revision after the
// last one received: the updates made meanwhile, every one of them, are
// delivered once, none twice.
func TestWatchKVResumes(t *testing.T) {
	srv := natstest.New(t)
	kv := createKV(t, jetStreamClient(t, srv), "resume")
	got := newUpdates()
	tr := connect(t, srv)
	startWatch(t, broker.New(tr), func(b *broker.Broker) error {
		return b.Subscribe("k.*", got.handler, natsbroker.WatchKV("resume"))
	})
	var want []string
	for i := range 5 {
		put(t, kv, fmt.Sprintf("k.%d", i%2), fmt.Sprint(i))
		want = append(want, fmt.Sprintf("k.%d=%d", i%2, i))
	}
	got.wait(t, 5)
	if n := natsbroker.EndWatchers(tr); n != 1 {
		t.Fatalf("ended %d watchers, want 1", n)
	}
	// The same keys again, several times each: a new watcher that
	// started at the last value per key would miss all but the last.
	for i := 5; i < 12; i++ {
		put(t, kv, fmt.Sprintf("k.%d", i%2), fmt.Sprint(i))
		want = append(want, fmt.Sprintf("k.%d=%d", i%2, i))
	}
	us := got.wait(t, 12)
	if r := renderUpdates(us); r != strings.Join(want, ", ") {
		t.Fatalf("updates:\n got %s\nwant %s", r, strings.Join(want, ", "))
	}
	put(t, kv, "k.end", "end")
	if us := got.wait(t, 13); len(us) != 13 || us[12].key != "k.end" {
		t.Fatalf("after the sentinel: %s", renderUpdates(us))
	}
}

// TestWatchKVRestart restarts the server while a watch runs, with an
// update in flight in the handler: every update made before and after the
// restart is delivered, once, in order.
func TestWatchKVRestart(t *testing.T) {
	srv := natstest.New(t)
	if !srv.Embedded() {
		t.Skip("restart needs the embedded server")
	}
	kv := createKV(t, jetStreamClient(t, srv), "restart")
	got := newUpdates()
	down := make(chan struct{})
	watchBroker(t, srv, func(b *broker.Broker) error {
		return b.Subscribe(">", func(ctx context.Context, m *broker.Message) error {
			if string(m.Body) == "before-5" {
				<-down
			}
			return got.handler(ctx, m)
		}, natsbroker.WatchKV("restart"))
	})
	var want []string
	// putRetrying puts across the restart, retrying until the server
	// takes it; a put that did arrive the first time fails the retry's
	// expected revision check instead of writing twice.
	putRetrying := func(key, value string) {
		t.Helper()
		testutil.Eventually(t, time.Minute, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, err := kv.PutString(ctx, key, value)
			return err == nil
		}, "put "+value)
		want = append(want, key+"="+value)
	}
	for i := range 10 {
		putRetrying(fmt.Sprintf("key.%d", i%3), fmt.Sprintf("before-%d", i))
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	close(down)
	if err := srv.StartAgain(); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		putRetrying(fmt.Sprintf("key.%d", i%3), fmt.Sprintf("after-%d", i))
	}
	us := got.wait(t, 20)
	if r := renderUpdates(us); r != strings.Join(want, ", ") {
		t.Fatalf("updates:\n got %s\nwant %s", r, strings.Join(want, ", "))
	}
	putRetrying("key.end", "end")
	if us := got.wait(t, 21); len(us) != 21 {
		t.Fatalf("after the sentinel: %s", renderUpdates(us))
	}
}

// TestWatchObjects: objects matching the pattern, existing ones first,
// with their content, headers and NUID; a replaced object with its new
// content; a deleted one as a deletion.
func TestWatchObjects(t *testing.T) {
	srv := natstest.New(t)
	js := jetStreamClient(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obs, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "files", Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	putObject := func(name, content string, h natsgo.Header) *jetstream.ObjectInfo {
		t.Helper()
		info, err := obs.Put(ctx, jetstream.ObjectMeta{Name: name, Headers: h}, strings.NewReader(content))
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	first := putObject("reports.a", "A1", natsgo.Header{"Content-Type": {"text/plain"}})
	putObject("other", "not watched", nil)

	got := newUpdates()
	watchBroker(t, srv, func(b *broker.Broker) error {
		return b.Subscribe("reports.*", got.handler, natsbroker.WatchObjects("files"))
	})
	got.wait(t, 1)
	putObject("reports.b", strings.Repeat("B", 300<<10), nil) // several chunks
	putObject("reports.a", "A2", nil)
	// An object deleted before its put was delivered is delivered only
	// as a deletion (its content is gone): wait for the put first.
	got.wait(t, 3)
	if err := obs.Delete(ctx, "reports.b"); err != nil {
		t.Fatal(err)
	}
	putObject("reports.deep.x", "not matched by *", nil)
	putObject("reports.c", "C", nil)

	us := got.wait(t, 5)
	want := "reports.a=A1, reports.b=" + strings.Repeat("B", 300<<10) + ", reports.a=A2, reports.b , reports.c=C"
	if r := renderUpdates(us); r != want {
		t.Fatalf("updates: got %.200s", r)
	}
	if us[0].id != first.NUID || us[0].contentType != "text/plain" {
		t.Errorf("first update: id %q content type %q, want %q text/plain", us[0].id, us[0].contentType, first.NUID)
	}
	for i, u := range us {
		if u.bucket != "files" || u.stream != "OBJ_files" || u.sub != "reports.*" || u.count != 1 || !u.hasTime {
			t.Errorf("update %d: facts %+v", i, u)
		}
		if u.deleted != (i == 3) || u.deleted && u.hasBody {
			t.Errorf("update %d: deleted %v, body %v", i, u.deleted, u.hasBody)
		}
	}
}

// TestWatchValidation: what Subscribe and Start refuse.
func TestWatchValidation(t *testing.T) {
	srv := natstest.New(t)
	b := broker.New(connect(t, srv))
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	h := func(context.Context, *broker.Message) error { return nil }
	for name, opts := range map[string][]broker.SubscribeOption{
		"bucket with a dot":     {natsbroker.WatchKV("a.b")},
		"empty bucket":          {natsbroker.WatchObjects("")},
		"bucket with a space":   {natsbroker.WatchKV("a b")},
		"two buckets":           {natsbroker.WatchKV("a"), natsbroker.WatchObjects("b")},
		"with Stream":           {natsbroker.WatchKV("a"), natsbroker.Stream("S")},
		"with JetStream":        {natsbroker.WatchKV("a"), natsbroker.JetStream()},
		"with Core":             {natsbroker.WatchObjects("a"), natsbroker.Core()},
		"with BindConsumer":     {natsbroker.WatchKV("a"), natsbroker.BindConsumer("c")},
		"with PendingLimits":    {natsbroker.WatchKV("a"), natsbroker.PendingLimits(1, 1)},
		"with a group":          {natsbroker.WatchKV("a"), broker.Group("g")},
		"with MaxHandlingTime":  {natsbroker.WatchKV("a"), natsbroker.MaxHandlingTime(time.Second)},
		"with ConsumeOptions":   {natsbroker.WatchKV("a"), natsbroker.ConsumeOptions(jetstream.PullMaxMessages(1))},
		"with OrderedRetries":   {natsbroker.WatchObjects("a"), natsbroker.OrderedRetries()},
		"with ConfigureConsume": {natsbroker.WatchKV("a"), natsbroker.ConfigureConsumer(func(*jetstream.ConsumerConfig) {})},
	} {
		if err := b.Subscribe("k", h, opts...); !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("%s: Subscribe error %v, want ErrInvalid", name, err)
		}
	}
	// A watch delivers updates as they come: it cannot be pulled.
	if _, err := broker.NewPuller[string](b, "k", natsbroker.WatchKV("a")); !errors.Is(err, broker.ErrInvalid) {
		t.Errorf("a Puller of a watch: %v, want ErrInvalid", err)
	}
	// A watch's pattern names keys, not subjects: a dead-letter subject
	// it would match is no loop, and a watch of every key may dead-letter.
	for _, opt := range []broker.SubscribeOption{natsbroker.WatchKV("every"), natsbroker.WatchObjects("every")} {
		if err := b.Subscribe(">", h, opt, broker.DeadLetter("dlq.settings")); err != nil {
			t.Errorf("a watch of > with a dead-letter subject: %v", err)
		}
	}
	for _, pattern := range []string{"a..b", ".a", "a.", "a.>.b", "a*", "a b"} {
		if err := b.Subscribe(pattern, h, natsbroker.WatchKV("ok")); !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("key pattern %q: Subscribe error %v, want ErrInvalid", pattern, err)
		}
	}
	if err := b.SubscribeBatch("k", func(context.Context, []*broker.Message) error { return nil },
		natsbroker.WatchKV("a")); !errors.Is(err, broker.ErrInvalid) {
		t.Errorf("batch: Subscribe error %v, want ErrInvalid", err)
	}

	for _, opt := range []broker.SubscribeOption{natsbroker.WatchKV("missing"), natsbroker.WatchObjects("missing")} {
		mb := broker.New(connect(t, srv))
		if err := mb.Subscribe(">", h, opt); err != nil {
			t.Fatal(err)
		}
		err := mb.Start(context.Background())
		if !errors.Is(err, jetstream.ErrBucketNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) || !strings.Contains(err.Error(), "missing") {
			t.Errorf("Start with a missing bucket: %v, want an error naming it", err)
		}
		_ = mb.Close(context.Background())
	}
	if _, err := jetStreamClient(t, srv).KeyValue(context.Background(), "missing"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("Start created the missing bucket: %v", err)
	}
}

// TestWatchEndpoint: the watch is documented like any subscription, with
// its key pattern and payload type, and the AsyncAPI document shows it as
// a channel of the NATS server whose address is the pattern.
func TestWatchEndpoint(t *testing.T) {
	b := broker.New(connect(t, natstest.New(t)))
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	err := broker.Handle(b, "config.*", func(context.Context, setting) error { return nil },
		natsbroker.WatchKV("settings"))
	if err != nil {
		t.Fatal(err)
	}
	eps := b.Endpoints()
	if len(eps) != 1 || eps[0].Destination != "config.*" || eps[0].Payload == nil || eps[0].Payload.Name() != "setting" {
		t.Fatalf("endpoints %+v", eps)
	}
	doc, err := asyncapi.New().Build(b)
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"address":"config.{token2}"`) || !strings.Contains(string(js), `"protocol":"nats"`) {
		t.Errorf("AsyncAPI document without the watch's channel:\n%s", js)
	}
}

// TestWatchSpans: a process span per update, named after the pattern,
// with the key as destination. A KV entry carries no headers, so its span
// is a root; an object put with trace context and baggage in its headers
// continues the producer's trace and hands the handler its baggage.
func TestWatchSpans(t *testing.T) {
	srv := natstest.New(t)
	js := jetStreamClient(t, srv)
	kv := createKV(t, js, "spans")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obs, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "objspans"})
	if err != nil {
		t.Fatal(err)
	}
	b, rec, _ := observed(t, connect(t, srv))
	got := newUpdates()
	var tenant sync.Map
	startWatch(t, b, func(b *broker.Broker) error {
		if err := b.Subscribe("s.*", got.handler, natsbroker.WatchKV("spans")); err != nil {
			return err
		}
		return b.Subscribe("o.*", func(ctx context.Context, m *broker.Message) error {
			tenant.Store(m.Destination, baggage.FromContext(ctx).Get("tenant"))
			return got.handler(ctx, m)
		}, natsbroker.WatchObjects("objspans"))
	})
	put(t, kv, "s.a", "1")
	got.wait(t, 1)

	producer, h := tracedHeaders(t, rec)
	if _, err := obs.Put(ctx, jetstream.ObjectMeta{Name: "o.x", Headers: h}, strings.NewReader("X")); err != nil {
		t.Fatal(err)
	}
	got.wait(t, 2)

	testutil.Eventually(t, 10*time.Second, func() bool {
		return len(rec.SpansByName("process s.*")) == 1 && len(rec.SpansByName("process o.*")) == 1
	}, "two process spans")
	kvSpan := rec.SpanByName(t, "process s.*")
	if kvSpan.SpanKind() != trace.SpanKindConsumer || !testutil.IsRoot(kvSpan) {
		t.Errorf("KV process span: kind %v, parent %v; want a consumer root", kvSpan.SpanKind(), kvSpan.Parent())
	}
	wantAttrs := map[attribute.Key]string{
		"messaging.system":           "nats",
		"messaging.destination.name": "s.a",
		"messaging.operation.name":   "process",
		"messaging.operation.type":   "process",
	}
	attrs := map[attribute.Key]string{}
	for _, kv := range kvSpan.Attributes() {
		attrs[kv.Key] = kv.Value.String()
	}
	for k, v := range wantAttrs {
		if attrs[k] != v {
			t.Errorf("KV process span: %s = %q, want %q (all: %v)", k, attrs[k], v, attrs)
		}
	}
	objSpan := rec.SpanByName(t, "process o.*")
	if !testutil.IsChildOf(objSpan, producer) {
		t.Errorf("object process span's parent %v, want the producer %v", objSpan.Parent().SpanID(), producer.SpanContext().SpanID())
	}
	if v, _ := tenant.Load("o.x"); v != "acme" {
		t.Errorf("baggage tenant in the object handler %q, want acme", v)
	}
}

// tracedHeaders ends a producer span and returns it with NATS headers
// carrying its context and the baggage tenant=acme, as a service that puts
// an object with propagated headers writes them.
func tracedHeaders(t *testing.T, rec *testutil.Recorder) (sdktrace.ReadOnlySpan, natsgo.Header) {
	t.Helper()
	m, err := otelbaggage.NewMember("tenant", "acme")
	if err != nil {
		t.Fatal(err)
	}
	bg, err := otelbaggage.New(m)
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := rec.TracerProvider.Tracer("test").Start(otelbaggage.ContextWithBaggage(context.Background(), bg), "producer")
	h := natsgo.Header{}
	propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}).
		Inject(ctx, propagation.HeaderCarrier(h))
	span.End()
	return rec.SpanByName(t, "producer"), h
}

// TestWatchHostile: values that do not decode are dropped with an error
// log (no dead-letter destination) and the watch goes on; an object whose
// headers hold garbage trace context, baggage and keys NATS cannot carry
// is still delivered, in a trace of its own.
func TestWatchHostile(t *testing.T) {
	srv := natstest.New(t)
	js := jetStreamClient(t, srv)
	kv := createKV(t, js, "hostile")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obs, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "hostileobj"})
	if err != nil {
		t.Fatal(err)
	}
	b, rec, logs := observed(t, connect(t, srv))
	var (
		mu   sync.Mutex
		good []int
	)
	objs := newUpdates()
	startWatch(t, b, func(b *broker.Broker) error {
		if err := b.Subscribe(">", objs.handler, natsbroker.WatchObjects("hostileobj")); err != nil {
			return err
		}
		return broker.Handle(b, ">", func(_ context.Context, v setting) error {
			mu.Lock()
			good = append(good, v.Level)
			mu.Unlock()
			return nil
		}, natsbroker.WatchKV("hostile"))
	})
	for _, v := range []string{`{"level":1}`, `{"level":`, "\x00\xff", `{"level":-1}`, `[]`, `{"level":2}`} {
		put(t, kv, "k", v)
	}
	h := natsgo.Header{
		"traceparent":  {"00-zzzz-zzzz-01"},
		"baggage":      {"%%%;;=="},
		"bad key: x":   {"v"},
		"Content-Type": {"application/x-unknown\r\n"},
	}
	if _, err := obs.Put(ctx, jetstream.ObjectMeta{Name: "weird name \u00e9", Headers: h}, strings.NewReader("body")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(good) == 2
	}, "the two good values")
	mu.Lock()
	if fmt.Sprint(good) != "[1 2]" {
		t.Errorf("handled %v, want [1 2]", good)
	}
	mu.Unlock()
	o := objs.wait(t, 1)
	if o[0].key != "weird name \u00e9" || o[0].body != "body" {
		t.Errorf("object update %+v", o[0])
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return len(rec.SpansByName("process >")) == 7 }, "seven process spans")
	for _, s := range rec.SpansByName("process >") {
		if !testutil.IsRoot(s) {
			t.Errorf("span %s has a parent from garbage headers", s.Name())
		}
	}
	if n, _ := logged(t, logs, "tracebus: handler failed, dropping message", "attempt"); n != 4 {
		t.Errorf("%d drops logged, want 4 (the values that do not decode or validate):\n%s", n, logs.String())
	}
}

// TestWatchKVConcurrency: with several handlers at once every update is
// still delivered once, and Close ends the workers (goleak checks it).
func TestWatchKVConcurrency(t *testing.T) {
	srv := natstest.New(t)
	kv := createKV(t, jetStreamClient(t, srv), "concurrent")
	got := newUpdates()
	b := watchBroker(t, srv, func(b *broker.Broker) error {
		return b.Subscribe("c.*", got.handler, natsbroker.WatchKV("concurrent"), broker.Concurrency(4))
	})
	want := map[string]bool{}
	for i := range 40 {
		k := fmt.Sprintf("c.%d", i)
		put(t, kv, k, "v")
		want[k] = true
	}
	us := got.wait(t, 40)
	for _, u := range us {
		if !want[u.key] {
			t.Errorf("unexpected or repeated update %s", u)
		}
		delete(want, u.key)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(got.snapshot()); n != 40 {
		t.Errorf("%d updates after Close, want 40", n)
	}
}
