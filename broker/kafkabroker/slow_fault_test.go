package kafkabroker_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/testutil/kafkatest"
)

// TestHandlerSlowerThanSessionTimeout holds one message in its handler
// while the group's coordinator sees three session timeouts' worth of
// heartbeats. kafka-go heartbeats from its own goroutine, so the member is
// not evicted: no JoinGroup is sent while the handler is blocked, the slow
// message is processed once, nothing after it is lost or processed twice,
// and the group commits every offset.
func TestHandlerSlowerThanSessionTimeout(t *testing.T) {
	const (
		// Long enough that a heartbeat goroutine starved for a second
		// on a loaded machine does not get the member evicted; three
		// sessions of heartbeats still take only six seconds.
		session     = 2 * time.Second
		heartbeat   = 100 * time.Millisecond
		partitions  = 2
		group       = "slow"
		total       = 100
		slowMessage = "10"
	)
	c := kafkatest.New(t, kafkatest.WithKfakeOptions(kfake.GroupMinSessionTimeout(100*time.Millisecond)))
	if c.External() {
		t.Skip("counts the coordinator's requests through kfake")
	}
	topic := newTopic(t, c, partitions)

	var heartbeats, joins atomic.Int64
	c.Fake().ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if r, ok := req.(*kmsg.HeartbeatRequest); ok && r.Group == group {
			heartbeats.Add(1)
		}
		return nil, nil, false
	})
	c.Fake().ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if r, ok := req.(*kmsg.JoinGroupRequest); ok && r.Group == group {
			joins.Add(1)
		}
		return nil, nil, false
	})

	b := newBroker(t, c,
		kafkabroker.WithConsumerGroupConfig(func(gc *kafka.ConsumerGroupConfig) {
			gc.SessionTimeout = session
			gc.HeartbeatInterval = heartbeat
		}),
	)
	var mu sync.Mutex
	seen := map[string]int{}
	blocked, release := make(chan struct{}), make(chan struct{})
	if err := b.Subscribe(topic, func(_ context.Context, m *broker.Message) error {
		if string(m.Body) == slowMessage {
			select {
			case <-blocked:
			default:
				close(blocked)
				<-release
			}
		}
		mu.Lock()
		seen[string(m.Body)]++
		mu.Unlock()
		return nil
	}, broker.Group(group)); err != nil {
		t.Fatal(err)
	}
	start(t, b)
	// Wait for the member to hold its partitions before publishing, so
	// that it reads from the start of the stream.
	eventually(t, func() bool { return groupState(t, c, group) == "Stable" }, "group stable")

	msgs := make([]*broker.Message, 0, total)
	for i := range total {
		body := strconv.Itoa(i)
		msgs = append(msgs, &broker.Message{Destination: topic, Key: []byte(body), Body: []byte(body)})
	}
	if err := b.PublishBatch(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	recv(t, blocked)
	joinsBefore := joins.Load()
	// Three session timeouts of heartbeats while the handler is blocked.
	beatsAtBlock := heartbeats.Load()
	need := int64(3 * session / heartbeat)
	eventually(t, func() bool { return heartbeats.Load()-beatsAtBlock >= need },
		"%d heartbeats while the handler is blocked", need)
	close(release)

	eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == total
	}, "all %d messages processed", total)
	eventually(t, func() bool {
		var sum int64
		for _, off := range committed(t, c, group, topic, partitions) {
			sum += off
		}
		return sum == total
	}, "group committed all %d offsets", total)
	if j := joins.Load(); j != joinsBefore {
		t.Errorf("the member joined the group again (%d JoinGroup requests, %d before the handler blocked): it was evicted", j, joinsBefore)
	}
	mu.Lock()
	defer mu.Unlock()
	for body, n := range seen {
		if n != 1 {
			t.Errorf("message %s processed %d times", body, n)
		}
	}
}
