package kafkabroker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/kafkatest"
)

// errNetworkCut is what a severed member's dials fail with.
var errNetworkCut = errors.New("test: network cut")

// severableNet dials Kafka connections that Sever closes all at once, after
// which every dial fails: the member is gone from the network as if its
// process had died or been partitioned, without Close, LeaveGroup or a
// final commit.
type severableNet struct {
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func (s *severableNet) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cut {
		return nil, errNetworkCut
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	s.conns = append(s.conns, c)
	return c, nil
}

// Sever closes every connection dialed so far and fails later dials.
func (s *severableNet) Sever() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cut = true
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.conns = nil
}

// options makes the group membership and the partition readers of a
// transport dial through s.
func (s *severableNet) options() []kafkabroker.Option {
	with := func(d *kafka.Dialer) *kafka.Dialer {
		cp := *d
		cp.DialFunc = s.dial
		return &cp
	}
	return []kafkabroker.Option{
		kafkabroker.WithConsumerGroupConfig(func(gc *kafka.ConsumerGroupConfig) { gc.Dialer = with(gc.Dialer) }),
		kafkabroker.WithReaderConfig(func(rc *kafka.ReaderConfig) { rc.Dialer = with(rc.Dialer) }),
	}
}

// handled records which bodies a group processed, by member and partition.
type handled struct {
	mu          sync.Mutex
	seen        map[string]int
	byMember    map[string]int
	partitionOf map[string]map[int32]bool // member -> partitions it handled
}

func newHandled() *handled {
	return &handled{seen: map[string]int{}, byMember: map[string]int{}, partitionOf: map[string]map[int32]bool{}}
}

func (h *handled) add(member string, m *broker.Message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen[string(m.Body)]++
	h.byMember[member]++
	if h.partitionOf[member] == nil {
		h.partitionOf[member] = map[int32]bool{}
	}
	h.partitionOf[member][m.Delivery.Partition] = true
}

func (h *handled) count(member string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.byMember[member]
}

func (h *handled) partitions(member string) []int32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []int32
	for p := range h.partitionOf[member] {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// resetPartitions forgets which partitions member handled.
func (h *handled) resetPartitions(member string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.partitionOf, member)
}

func (h *handled) missing(published int) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for i := range published {
		if h.seen[strconv.Itoa(i)] == 0 {
			out = append(out, strconv.Itoa(i))
		}
	}
	return out
}

// TestGroupMemberCutWithoutClose runs two members of a group; halfway
// through the stream every connection of one member is cut and it can dial
// no more (no Close, no LeaveGroup). The coordinator evicts it after the
// session timeout, the other member takes over its partitions and resumes
// from the last committed offsets: every message is processed at least
// once.
func TestGroupMemberCutWithoutClose(t *testing.T) {
	total := testkit.Scale(400, 50_000)
	c := kafkatest.New(t, kafkatest.WithKfakeOptions(kfake.GroupMinSessionTimeout(100*time.Millisecond)))
	const partitions, group = 4, "takeover"
	topic := newTopic(t, c, partitions)
	// Kafka's default minimum session: the coordinator evicts the cut
	// member after it, and a member starved for CPU on a loaded machine
	// (a race build beside other packages' tests) keeps its place. A
	// shorter one (1s, then 3s) saw members evicted before both ever held
	// partitions.
	const session = 6 * time.Second
	timings := []kafkabroker.Option{
		kafkabroker.WithConsumerGroupConfig(func(gc *kafka.ConsumerGroupConfig) {
			gc.SessionTimeout = session
			gc.RebalanceTimeout = 2 * session
		}),
	}
	got := newHandled()
	subscribe := func(b *broker.Broker, name string) {
		t.Helper()
		if err := b.Subscribe(topic, func(_ context.Context, m *broker.Message) error {
			got.add(name, m)
			return nil
		}, broker.Group(group)); err != nil {
			t.Fatal(err)
		}
		start(t, b)
	}

	cut := &severableNet{}
	lost := broker.New(mustTransport(t, c, append(timings, cut.options()...)...))
	t.Cleanup(func() {
		// Close must return although the member can reach nothing; its
		// error (a commit or leave that cannot be sent) is expected.
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = lost.Close(ctx)
	})
	subscribe(lost, "lost")
	survivor := newBroker(t, c, timings...)
	subscribe(survivor, "survivor")
	pub := newBroker(t, c)

	published := 0
	publish := func(n int) {
		t.Helper()
		msgs := make([]*broker.Message, 0, n)
		for range n {
			body := strconv.Itoa(published)
			msgs = append(msgs, &broker.Message{Destination: topic, Key: []byte(body), Body: []byte(body)})
			published++
		}
		if err := pub.PublishBatch(context.Background(), msgs); err != nil {
			t.Fatal(err)
		}
	}
	// Publish in rounds until both members hold partitions and have
	// processed from them: each round waits until everything published is
	// handled, so that a member that joins late still gets new messages on
	// its partitions (publishing everything up front let the first member
	// consume it all before the second one joined, and nothing was left
	// for it).
	deadline := time.Now().Add(2 * wait)
	for got.count("lost") == 0 || got.count("survivor") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("both members consume: not within %v (lost %d, survivor %d of %d)",
				2*wait, got.count("lost"), got.count("survivor"), published)
		}
		publish(10)
		testutil.Eventually(t, 2*wait, func() bool { return len(got.missing(published)) == 0 },
			fmt.Sprintf("the %d messages published so far handled", published))
	}
	for published < total/2 {
		publish(10)
	}
	cutParts := got.partitions("lost")
	if len(cutParts) == 0 {
		t.Fatal("the member to be cut handled no partition")
	}
	cut.Sever()
	got.resetPartitions("survivor")
	// As many again after the cut, wherever the first half ended.
	for end := published + total/2; published < end; {
		publish(10)
	}
	testutil.Eventually(t, 2*wait, func() bool { return len(got.missing(published)) == 0 },
		fmt.Sprintf("all %d messages processed after the member was cut", published))
	takenOver := got.partitions("survivor")
	for _, p := range cutParts {
		if !slices.Contains(takenOver, p) {
			t.Errorf("partition %d of the cut member was not taken over; survivor handled %v since the cut", p, takenOver)
		}
	}
	if missing := got.missing(published); len(missing) > 0 {
		t.Errorf("lost %d messages: %v", len(missing), missing)
	}
	t.Logf("published %d; cut member had partitions %v and processed %d; survivor processed %d",
		published, cutParts, got.count("lost"), got.count("survivor"))
}
