package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/testutil"
)

// TestTransport is the conformance suite every transport passes: what a
// Broker promises its users must hold whatever carries the messages. Tests
// for features the transport does not declare are skipped.
func TestTransport(t *testing.T, s Suite) {
	tests := []struct {
		name string
		need bool
		run  func(*testing.T, Suite)
	}{
		{"RoundTrip", true, testRoundTrip},
		{"PublishBatch", true, testPublishBatch},
		{"SubscribeBatch", s.Features.Batch, testSubscribeBatch},
		{"PartialBatchAfterWait", s.Features.Batch, testPartialBatch},
		{"Groups", s.Features.Groups, testGroups},
		{"Wildcards", s.Features.Wildcards, testWildcards},
		{"ErrorRedelivers", true, testErrorRedelivers},
		{"DeadLetter", true, testDeadLetter},
		{"DropAfterLastAttempt", true, testDrop},
		{"Filters", true, testFilters},
		{"PanicRecovered", true, testPanic},
		{"CloseDrainsInFlight", true, testCloseDrains},
		{"CloseDeadline", true, testCloseDeadline},
		{"ConcurrentPublishers", true, testConcurrentPublishers},
		{"Ordering", s.Features.Ordered, testOrdering},
		{"Concurrency", s.Features.Concurrent, testConcurrency},
		{"SubscribeAfterStart", true, testSubscribeAfterStart},
		{"CloseTwice", true, testCloseTwice},
		{"StopStart", true, testStopStart},
		{"StopDrainsInFlight", true, testStopDrains},
		{"StopDeadline", true, testStopDeadline},
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

func testRoundTrip(t *testing.T, s Suite) {
	dest := s.Destination(t)
	b := s.Broker(t)
	in := testkit.NewInbox[*broker.Message](s.Wait())
	if err := b.Subscribe(dest, func(_ context.Context, m *broker.Message) error {
		in.Put(m.Clone())
		return nil
	}, s.Options()...); err != nil {
		t.Fatal(err)
	}
	s.Start(t, b)

	sent := &broker.Message{Destination: dest, Body: []byte("hello\x00world")}
	sent.Headers.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	sent.Headers.Set("X-Mixed-Case", "Value")
	sent.Headers.Add("x-dup", "one")
	sent.Headers.Add("x-dup", "two")
	if s.Features.Keys {
		sent.Key = []byte("key-1")
	}
	if s.Features.MessageID {
		sent.ID = "id-" + dest
	}
	if err := b.Publish(context.Background(), sent); err != nil {
		t.Fatalf("publish: %v", err)
	}
	got := in.Next(t)
	if got.Destination != dest {
		t.Errorf("destination %q, want %q", got.Destination, dest)
	}
	if !bytes.Equal(got.Body, sent.Body) {
		t.Errorf("body %q, want %q", got.Body, sent.Body)
	}
	if s.Features.Keys && !bytes.Equal(got.Key, sent.Key) {
		t.Errorf("key %q, want %q", got.Key, sent.Key)
	}
	if s.Features.MessageID && got.ID != sent.ID {
		t.Errorf("id %q, want %q", got.ID, sent.ID)
	}
	for _, k := range []string{"traceparent", "X-Mixed-Case"} {
		if v := got.Headers.Get(k); v != sent.Headers.Get(k) {
			t.Errorf("header %s = %q, want %q", k, v, sent.Headers.Get(k))
		}
	}
	if !slices.Contains(got.Headers.Keys(), "X-Mixed-Case") || !slices.Contains(got.Headers.Keys(), "traceparent") {
		t.Errorf("header keys lost their case: %q", got.Headers.Keys())
	}
	if vs := got.Headers.Values("x-dup"); !slices.Equal(vs, []string{"one", "two"}) {
		t.Errorf("duplicate header values %q, want [one two]", vs)
	}
	if got.Delivery.DeliveryCount != 1 {
		t.Errorf("delivery count %d, want 1", got.Delivery.DeliveryCount)
	}
	if got.Delivery.Subscription != dest {
		t.Errorf("delivery subscription %q, want %q", got.Delivery.Subscription, dest)
	}
}

func testPublishBatch(t *testing.T, s Suite) {
	dest := s.Destination(t)
	b := s.Broker(t)
	in := collectBodies(t, s, b, dest)
	s.Start(t, b)
	const n = 10
	msgs := make([]*broker.Message, n)
	for i := range msgs {
		msgs[i] = &broker.Message{Destination: dest, Body: []byte(strconv.Itoa(i))}
		if s.Features.Keys {
			msgs[i].Key = []byte("k")
		}
	}
	if err := b.PublishBatch(context.Background(), msgs); err != nil {
		t.Fatalf("publish batch: %v", err)
	}
	got := in.TakeN(t, n)
	if s.Features.Ordered {
		for i, v := range got {
			if v != strconv.Itoa(i) {
				t.Fatalf("batch arrived out of order: %q", got)
			}
		}
	}
	slices.Sort(got)
	if len(slices.Compact(got)) != n {
		t.Fatalf("duplicates among %q", got)
	}
}

func testSubscribeBatch(t *testing.T, s Suite) {
	dest := s.Destination(t)
	b := s.Broker(t)
	const n, size = 12, 5
	in := testkit.NewInbox[[]string](s.Wait())
	if err := b.SubscribeBatch(dest, func(_ context.Context, msgs []*broker.Message) error {
		bodies := make([]string, len(msgs))
		for i, m := range msgs {
			bodies[i] = string(m.Body)
		}
		in.Put(bodies)
		return nil
	}, s.Options(broker.Batch(size, 300*time.Millisecond))...); err != nil {
		t.Fatal(err)
	}
	s.Start(t, b)
	msgs := make([]*broker.Message, n)
	for i := range msgs {
		msgs[i] = &broker.Message{Destination: dest, Body: []byte(strconv.Itoa(i))}
	}
	if err := b.PublishBatch(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	var all []string
	largest := 0
	for len(all) < n {
		batch := in.Next(t)
		if len(batch) == 0 || len(batch) > size {
			t.Fatalf("batch of %d messages, want 1..%d", len(batch), size)
		}
		largest = max(largest, len(batch))
		all = append(all, batch...)
	}
	if largest < 2 {
		t.Errorf("no batch held more than one message")
	}
	slices.Sort(all)
	if len(slices.Compact(all)) != n {
		t.Fatalf("want %d distinct messages, got %q", n, all)
	}
}

func testPartialBatch(t *testing.T, s Suite) {
	dest := s.Destination(t)
	b := s.Broker(t)
	in := testkit.NewInbox[int](s.Wait())
	if err := b.SubscribeBatch(dest, func(_ context.Context, msgs []*broker.Message) error {
		in.Put(len(msgs))
		return nil
	}, s.Options(broker.Batch(100, 100*time.Millisecond))...); err != nil {
		t.Fatal(err)
	}
	s.Start(t, b)
	for i := range 3 {
		if err := b.Publish(context.Background(), &broker.Message{Destination: dest, Body: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for total < 3 {
		total += in.Next(t)
	}
	if total != 3 {
		t.Fatalf("got %d messages, want 3", total)
	}
}

func testGroups(t *testing.T, s Suite) {
	dest := s.Destination(t)
	const n = 20
	group := testkit.NewInbox[string](s.Wait())
	solo := testkit.NewInbox[string](s.Wait())
	var members []*broker.Broker
	for i := range 2 {
		b := s.Broker(t)
		if err := b.Subscribe(dest, func(_ context.Context, m *broker.Message) error {
			group.Put(string(m.Body))
			return nil
		}, s.Options(broker.Group("workers"), broker.Name("workers"))...); err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
		s.Start(t, b)
		members = append(members, b)
	}
	other := s.Broker(t)
	if err := other.Subscribe(dest, func(_ context.Context, m *broker.Message) error {
		solo.Put(string(m.Body))
		return nil
	}, s.Options(broker.Group("audit"), broker.Name("audit"))...); err != nil {
		t.Fatal(err)
	}
	s.Start(t, other)
	for i := range n {
		if err := members[0].Publish(context.Background(), &broker.Message{Destination: dest, Body: []byte(strconv.Itoa(i)), Key: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	for name, in := range map[string]*testkit.Inbox[string]{"group": group, "other group": solo} {
		got := in.TakeN(t, n)
		slices.Sort(got)
		if len(slices.Compact(got)) != n {
			t.Errorf("%s: want each of %d messages once, got %q", name, n, got)
		}
	}
	// A marker through the same group proves nothing else was queued.
	if err := members[0].Publish(context.Background(), &broker.Message{Destination: dest, Body: []byte("marker")}); err != nil {
		t.Fatal(err)
	}
	if v := group.Next(t); v != "marker" {
		t.Errorf("group received %q after the marker was sent; a message was delivered twice", v)
	}
}

func testWildcards(t *testing.T, s Suite) {
	dest := s.Destination(t)
	b := s.Broker(t)
	in := testkit.NewInbox[*broker.Message](s.Wait())
	pattern := dest + ".*"
	if err := b.Subscribe(pattern, func(_ context.Context, m *broker.Message) error {
		in.Put(m.Clone())
		return nil
	}, s.Options()...); err != nil {
		t.Fatal(err)
	}
	s.Start(t, b)
	for _, d := range []string{dest + ".a", dest + ".b.c", dest + ".d"} {
		if err := b.Publish(context.Background(), &broker.Message{Destination: d, Body: []byte(d)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{dest + ".a", dest + ".d"} {
		got := in.Next(t)
		if got.Destination != want || got.Delivery.Subscription != pattern {
			t.Errorf("got destination %q subscription %q, want %q and %q", got.Destination, got.Delivery.Subscription, want, pattern)
		}
	}
}

func testErrorRedelivers(t *testing.T, s Suite) {
	dest := s.Destination(t)
	b := s.Broker(t)
	in := testkit.NewInbox[int](s.Wait())
	if err := b.Subscribe(dest, func(_ context.Context, m *broker.Message) error {
		in.Put(m.Delivery.DeliveryCount)
		if string(m.Body) == "retry me" && m.Delivery.DeliveryCount < 3 {
			return errors.New("not yet")
		}
		return nil
	}, s.Options(broker.Group("g"), broker.Name("g"), broker.MaxAttempts(5), broker.RetryBackoff(broker.ConstantBackoff(20*time.Millisecond)))...); err != nil {
		t.Fatal(err)
	}
	s.Start(t, b)
	publish(t, b, dest, "retry me", "after")
	got := in.TakeN(t, 4)
	// "after" may interleave with the retries; the failing message must be
	// seen with attempts 1, 2, 3 and then never again.
	counts := slices.DeleteFunc(slices.Clone(got), func(c int) bool { return c == 1 })
	if !slices.Contains(got, 1) || !slices.Equal(counts, []int{2, 3}) {
		t.Fatalf("delivery counts %v, want attempts 1,2,3 of the failing message plus 1 of the next", got)
	}
	publish(t, b, dest, "marker")
	if c := in.Next(t); c != 1 {
		t.Fatalf("got a delivery with count %d before the marker: the acknowledged message came back", c)
	}
}

func testDeadLetter(t *testing.T, s Suite) {
	dest := s.Destination(t)
	dlq := s.Destination(t) + "-dlq"
	if s.Prepare != nil {
		s.Prepare(t, dlq)
	}
	b := s.Broker(t)
	var calls atomic.Int32
	if err := b.Subscribe(dest, func(context.Context, *broker.Message) error {
		calls.Add(1)
		return errors.New("boom")
	}, s.Options(broker.Group("g"), broker.Name("g"), broker.MaxAttempts(2), broker.RetryBackoff(broker.ConstantBackoff(10*time.Millisecond)), broker.DeadLetter(dlq))...); err != nil {
		t.Fatal(err)
	}
	dead := collectDeadLetters(t, s, b, dlq)
	s.Start(t, b)
	msg := &broker.Message{Destination: dest, Body: []byte("poison")}
	msg.Headers.Set("x-app", "kept")
	if s.Features.MessageID {
		msg.ID = "poison-" + dest
	}
	if err := b.Publish(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	got := dead.Next(t)
	if string(got.Body) != "poison" || got.Headers.Get("x-app") != "kept" {
		t.Errorf("dead letter body %q header %q, want the original", got.Body, got.Headers.Get("x-app"))
	}
	if got.Headers.Get(broker.HeaderDeadLetterError) != "boom" ||
		got.Headers.Get(broker.HeaderDeadLetterOrigin) != dest ||
		got.Headers.Get(broker.HeaderDeadLetterAttempts) != "2" {
		t.Errorf("dead letter headers %v", got.Headers)
	}
	// The copy needs an id of its own: a broker that de-duplicates by id
	// would otherwise drop it while acknowledging the publish.
	if s.Features.MessageID && got.ID != msg.ID+".dead-letter" {
		t.Errorf("dead letter id %q, want %q", got.ID, msg.ID+".dead-letter")
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("handler called %d times, want 2", n)
	}
}

// collectDeadLetters subscribes to dlq on b and returns what arrives there.
func collectDeadLetters(t *testing.T, s Suite, b *broker.Broker, dlq string) *testkit.Inbox[*broker.Message] {
	t.Helper()
	dead := testkit.NewInbox[*broker.Message](s.Wait())
	if err := b.Subscribe(dlq, func(_ context.Context, m *broker.Message) error {
		dead.Put(m.Clone())
		return nil
	}, s.Options(broker.Group("dlq"), broker.Name("dlq"))...); err != nil {
		t.Fatal(err)
	}
	return dead
}

func testDrop(t *testing.T, s Suite) {
	dest := s.Destination(t)
	b := s.Broker(t)
	in := testkit.NewInbox[string](s.Wait())
	if err := b.Subscribe(dest, func(_ context.Context, m *broker.Message) error {
		in.Put(string(m.Body))
		if string(m.Body) == "bad" {
			return errors.New("bad message")
		}
		return nil
	}, s.Options(broker.Group("g"), broker.Name("g"), broker.MaxAttempts(1))...); err != nil {
		t.Fatal(err)
	}
	s.Start(t, b)
	publish(t, b, dest, "bad", "good")
	got := in.TakeN(t, 2)
	if !slices.Equal(got, []string{"bad", "good"}) && !slices.Equal(got, []string{"good", "bad"}) {
		t.Fatalf("got %q, want bad once and good once", got)
	}
	publish(t, b, dest, "marker")
	if v := in.Next(t); v != "marker" {
		t.Fatalf("got %q before the marker: the dropped message came back", v)
	}
}

func testPanic(t *testing.T, s Suite) {
	dest := s.Destination(t)
	b := s.Broker(t)
	in := testkit.NewInbox[string](s.Wait())
	if err := b.Subscribe(dest, func(_ context.Context, m *broker.Message) error {
		in.Put(string(m.Body))
		if string(m.Body) == "panic" {
			panic("handler bug")
		}
		return nil
	}, s.Options(broker.Group("g"), broker.Name("g"), broker.MaxAttempts(1))...); err != nil {
		t.Fatal(err)
	}
	s.Start(t, b)
	publish(t, b, dest, "panic", "after")
	got := in.TakeN(t, 2)
	if !slices.Contains(got, "after") {
		t.Fatalf("consumption stopped after a panic: got %q", got)
	}
}

func testCloseDrains(t *testing.T, s Suite) {
	dest := s.Destination(t)
	b := broker.New(s.New(t))
	started := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	var calls atomic.Int32
	if err := b.Subscribe(dest, func(context.Context, *broker.Message) error {
		if calls.Add(1) == 1 {
			close(started)
		}
		<-release
		finished.Store(true)
		return nil
	}, s.Options(broker.Group("drain"), broker.Name("drain"))...); err != nil {
		t.Fatal(err)
	}
	s.Start(t, b)
	publish(t, b, dest, "slow")
	waitClosed(t, started, s.Wait(), "handler did not start")

	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.Wait())
		defer cancel()
		closed <- b.Close(ctx)
	}()
	// Close must wait for the handler: poll that it has not returned while
	// the handler is still blocked, then let the handler finish.
	testutil.Eventually(t, s.Wait(), func() bool { return len(closed) == 0 }, "close returned before the handler")
	close(release)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("close: %v", err)
		}
	case <-time.After(s.Wait()):
		t.Fatal("close did not return after the handler finished")
	}
	if !finished.Load() {
		t.Fatal("close returned before the in-flight handler finished")
	}
	if err := b.Publish(context.Background(), &broker.Message{Destination: dest}); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("publish after close: %v, want ErrClosed", err)
	}
	if !s.Features.Persistent {
		return
	}
	// The drained message was settled: a new member of the same group sees
	// only what comes after it.
	b2 := s.Broker(t)
	in := collectBodies(t, s, b2, dest, broker.Group("drain"), broker.Name("drain"))
	s.Start(t, b2)
	publish(t, b2, dest, "marker")
	if v := in.Next(t); v != "marker" {
		t.Fatalf("got %q before the marker: the drained message was not settled", v)
	}
}

func testCloseDeadline(t *testing.T, s Suite) {
	dest := s.Destination(t)
	b := broker.New(s.New(t))
	started := make(chan struct{})
	cancelled := make(chan struct{})
	if err := b.Subscribe(dest, func(ctx context.Context, _ *broker.Message) error {
		close(started)
		<-ctx.Done()
		close(cancelled)
		return ctx.Err()
	}, s.Options(broker.Group("stuck"), broker.Name("stuck"))...); err != nil {
		t.Fatal(err)
	}
	s.Start(t, b)
	publish(t, b, dest, "stuck")
	waitClosed(t, started, s.Wait(), "handler did not start")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := b.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close with a stuck handler: %v, want an error wrapping DeadlineExceeded", err)
	}
	waitClosed(t, cancelled, s.Wait(), "the stuck handler's context was not cancelled")
}

func testConcurrentPublishers(t *testing.T, s Suite) {
	dest := s.Destination(t)
	b := s.Broker(t)
	in := collectBodies(t, s, b, dest)
	s.Start(t, b)
	const publishers, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, publishers*each)
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				if err := b.Publish(context.Background(), &broker.Message{Destination: dest, Body: fmt.Appendf(nil, "%d-%d", p, i)}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("publish: %v", err)
	}
	got := in.TakeN(t, publishers*each)
	slices.Sort(got)
	if len(slices.Compact(got)) != publishers*each {
		t.Fatalf("duplicates or losses among %d messages", len(got))
	}
}

func testOrdering(t *testing.T, s Suite) {
	dest := s.Destination(t)
	b := s.Broker(t)
	in := testkit.NewInbox[int](s.Wait())
	if err := b.Subscribe(dest, func(_ context.Context, m *broker.Message) error {
		n, _ := strconv.Atoi(string(m.Body))
		in.Put(n)
		return nil
	}, s.Options()...); err != nil {
		t.Fatal(err)
	}
	s.Start(t, b)
	const n = 50
	for i := range n {
		if err := b.Publish(context.Background(), &broker.Message{Destination: dest, Key: []byte("one-key"), Body: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	got := in.TakeN(t, n)
	for i, v := range got {
		if v != i {
			t.Fatalf("position %d holds message %d: %v", i, v, got)
		}
	}
}

func testConcurrency(t *testing.T, s Suite) {
	dest := s.Destination(t)
	b := s.Broker(t)
	const n = 3
	var running, peak atomic.Int32
	release := make(chan struct{})
	done := testkit.NewInbox[struct{}](s.Wait())
	if err := b.Subscribe(dest, func(context.Context, *broker.Message) error {
		cur := running.Add(1)
		for {
			p := peak.Load()
			if cur <= p || peak.CompareAndSwap(p, cur) {
				break
			}
		}
		<-release
		running.Add(-1)
		done.Put(struct{}{})
		return nil
	}, s.Options(broker.Concurrency(n))...); err != nil {
		t.Fatal(err)
	}
	s.Start(t, b)
	for i := range n {
		publish(t, b, dest, strconv.Itoa(i))
	}
	testutil.Eventually(t, s.Wait(), func() bool { return peak.Load() == n }, fmt.Sprintf("%d handlers never ran at once", n))
	close(release)
	done.TakeN(t, n)
}

func testSubscribeAfterStart(t *testing.T, s Suite) {
	dest := s.Destination(t)
	b := s.Broker(t)
	s.Start(t, b)
	in := collectBodies(t, s, b, dest)
	publish(t, b, dest, "late")
	if v := in.Next(t); v != "late" {
		t.Fatalf("got %q", v)
	}
}

func testCloseTwice(t *testing.T, s Suite) {
	b := broker.New(s.New(t))
	if err := b.Subscribe(s.Destination(t), func(context.Context, *broker.Message) error { return nil }, s.Options()...); err != nil {
		t.Fatal(err)
	}
	s.Start(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), s.Wait())
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatalf("first close: %v", err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := b.Subscribe("x", func(context.Context, *broker.Message) error { return nil }); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("subscribe after close: %v, want ErrClosed", err)
	}
}

// collectBodies subscribes b to dest with a handler that records each
// message's body and acknowledges it.
func collectBodies(t *testing.T, s Suite, b *broker.Broker, dest string, opts ...broker.SubscribeOption) *testkit.Inbox[string] {
	t.Helper()
	in := testkit.NewInbox[string](s.Wait())
	if err := b.Subscribe(dest, func(_ context.Context, m *broker.Message) error {
		in.Put(string(m.Body))
		return nil
	}, s.Options(opts...)...); err != nil {
		t.Fatalf("subscribe %s: %v", dest, err)
	}
	return in
}

func publish(t *testing.T, b *broker.Broker, dest string, bodies ...string) {
	t.Helper()
	for _, body := range bodies {
		if err := b.Publish(context.Background(), &broker.Message{Destination: dest, Body: []byte(body)}); err != nil {
			t.Fatalf("publish %q: %v", body, err)
		}
	}
}

func waitClosed(t *testing.T, ch <-chan struct{}, wait time.Duration, msg string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(wait):
		t.Fatal(msg)
	}
}
