package kafkabroker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/testutil/kafkatest"
)

// commitRecorder records the offsets of every OffsetCommit request that
// reaches the in-process cluster for one group and topic.
type commitRecorder struct {
	mu      sync.Mutex
	commits []int64
}

func recordCommits(t *testing.T, c *kafkatest.Cluster, group, topic string) *commitRecorder {
	t.Helper()
	if c.External() {
		t.Skip("counting commit requests needs the in-process cluster")
	}
	r := &commitRecorder{}
	c.Fake().ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		oc := req.(*kmsg.OffsetCommitRequest)
		if oc.Group != group {
			return nil, nil, false
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, tp := range oc.Topics {
			if tp.Topic != topic {
				continue
			}
			for _, p := range tp.Partitions {
				r.commits = append(r.commits, p.Offset)
			}
		}
		return nil, nil, false // observe only: the cluster handles it
	})
	return r
}

func (r *commitRecorder) get() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.commits)
}

// A handler fails three times, then succeeds: the message is retried in
// place with a growing DeliveryCount, nothing is committed while it fails,
// and its offset is committed exactly once, after the success.
func TestRetryCommitsOnceAfterSuccess(t *testing.T) {
	c := kafkatest.New(t)
	topic := newTopic(t, c, 1)
	const group, failures = "retry", 3
	commits := recordCommits(t, c, group, topic)

	b := newBroker(t, c)
	type attempt struct {
		count     int
		committed map[int]int64 // the group's offsets while the handler ran
	}
	attempts := make(chan attempt, 10)
	if err := b.Subscribe(topic, func(_ context.Context, m *broker.Message) error {
		attempts <- attempt{m.Delivery.DeliveryCount, committed(t, c, group, topic, 1)}
		if string(m.Body) == "flaky" && m.Delivery.DeliveryCount <= failures {
			return errors.New("transient failure")
		}
		return nil
	}, broker.Group(group), broker.MaxAttempts(failures+1), broker.RetryBackoff(broker.ConstantBackoff(10*time.Millisecond))); err != nil {
		t.Fatal(err)
	}
	start(t, b)
	if err := b.Publish(context.Background(), &broker.Message{Destination: topic, Body: []byte("flaky")}); err != nil {
		t.Fatal(err)
	}

	for want := 1; want <= failures+1; want++ {
		a := recv(t, attempts)
		if a.count != want {
			t.Fatalf("attempt %d has DeliveryCount %d", want, a.count)
		}
		if off, ok := a.committed[0]; ok {
			t.Fatalf("offset %d committed before attempt %d finished", off, want)
		}
	}
	eventually(t, func() bool { return committed(t, c, group, topic, 1)[0] == 1 }, "offset 1 committed")
	if got := commits.get(); !slices.Equal(got, []int64{1}) {
		t.Fatalf("commit requests %v, want exactly one, of offset 1", got)
	}

	// The next message is committed by one request of its own: the first
	// commit is not repeated.
	if err := b.Publish(context.Background(), &broker.Message{Destination: topic, Body: []byte("next")}); err != nil {
		t.Fatal(err)
	}
	if a := recv(t, attempts); a.count != 1 {
		t.Fatalf("next message: DeliveryCount %d", a.count)
	}
	eventually(t, func() bool { return committed(t, c, group, topic, 1)[0] == 2 }, "offset 2 committed")
	if got := commits.get(); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("commit requests %v, want [1 2]", got)
	}
	select {
	case a := <-attempts:
		t.Fatalf("unexpected delivery with count %d", a.count)
	default:
	}
}

// A second member joins the group while messages stream in: every message
// is processed, none twice, the new member takes over partitions, and the
// group ends up with every offset committed.
func TestSecondMemberJoinsMidStream(t *testing.T) {
	c := kafkatest.New(t)
	const partitions, group = 3, "stream"
	topic := newTopic(t, c, partitions)

	var mu sync.Mutex
	seen := make(map[string]int)
	byMember := make(map[string]int)
	member := func(name string) *broker.Broker {
		b := newBroker(t, c)
		if err := b.Subscribe(topic, func(_ context.Context, m *broker.Message) error {
			mu.Lock()
			seen[string(m.Body)]++
			byMember[name]++
			mu.Unlock()
			return nil
		}, broker.Group(group)); err != nil {
			t.Fatal(err)
		}
		start(t, b)
		return b
	}
	count := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return byMember[name]
	}

	pub := member("first")
	published := 0
	publish := func() {
		t.Helper()
		body := strconv.Itoa(published)
		if err := pub.Publish(context.Background(), &broker.Message{Destination: topic, Key: []byte(body), Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
		published++
	}
	for range 50 {
		publish()
	}
	eventually(t, func() bool { return count("first") > 0 }, "first member consumes")
	member("second")
	// Keep the stream going until the second member got partitions and
	// consumed from them, then a little longer.
	deadline := time.Now().Add(wait)
	for count("second") < 20 || published < 200 {
		if time.Now().After(deadline) {
			t.Fatalf("second member consumed %d messages of %d published", count("second"), published)
		}
		publish()
		time.Sleep(time.Millisecond)
	}
	for range 50 {
		publish()
	}

	eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == published
	}, "all %d messages processed", published)
	mu.Lock()
	var dups []string
	for body, n := range seen {
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s×%d", body, n))
		}
	}
	t.Logf("published %d; first member processed %d, second %d", published, byMember["first"], byMember["second"])
	mu.Unlock()
	if len(dups) > 0 {
		t.Errorf("processed twice across the rebalance: %v", dups)
	}
	eventually(t, func() bool {
		var sum int64
		for _, off := range committed(t, c, group, topic, partitions) {
			sum += off
		}
		return sum == int64(published)
	}, "group committed all %d offsets", published)
}

// A rebalance waits for the delivery in flight: the member that had the
// partition finishes the message and commits it before it gives the
// partition up, so the new member does not process it again.
func TestRebalanceWaitsForInFlightDelivery(t *testing.T) {
	c := kafkatest.New(t)
	const group = "handover"
	topic := newTopic(t, c, 1)

	started := make(chan struct{})
	release := make(chan struct{})
	processed := make(chan string, 10)
	first := newBroker(t, c)
	if err := first.Subscribe(topic, func(_ context.Context, m *broker.Message) error {
		if string(m.Body) == "slow" {
			close(started)
			<-release
		}
		processed <- "first:" + string(m.Body)
		return nil
	}, broker.Group(group)); err != nil {
		t.Fatal(err)
	}
	start(t, first)
	if err := first.Publish(context.Background(), &broker.Message{Destination: topic, Body: []byte("slow")}); err != nil {
		t.Fatal(err)
	}
	recv(t, started)

	second := newBroker(t, c)
	if err := second.Subscribe(topic, func(_ context.Context, m *broker.Message) error {
		processed <- "second:" + string(m.Body)
		return nil
	}, broker.Group(group)); err != nil {
		t.Fatal(err)
	}
	start(t, second)
	// The rebalance starts and waits for the first member, which is still
	// in its handler.
	eventually(t, func() bool { return groupState(t, c, group) == "PreparingRebalance" }, "rebalance starts")
	select {
	case got := <-processed:
		t.Fatalf("%q processed while the slow message was in flight", got)
	default:
	}
	close(release)
	if got := recv(t, processed); got != "first:slow" {
		t.Fatalf("got %q, want first:slow", got)
	}
	eventually(t, func() bool { return committed(t, c, group, topic, 1)[0] == 1 }, "slow message committed")

	// Whoever owns the partition now gets the next message, and nobody
	// gets the slow one again.
	if err := first.Publish(context.Background(), &broker.Message{Destination: topic, Body: []byte("next")}); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, processed); got != "first:next" && got != "second:next" {
		t.Fatalf("got %q after the handover, want the next message", got)
	}
}

func groupState(t *testing.T, c *kafkatest.Cluster, group string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	res, err := c.Client().DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		t.Fatalf("describe group: %v", err)
	}
	for _, g := range res.Groups {
		if g.GroupID == group {
			return g.GroupState
		}
	}
	return ""
}
