package kafkabroker_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// clusterRun is a stream of keyed messages through a three-broker cluster:
// one publisher per key publishes its sequence in order (one message in
// flight each, retrying a failed publish until it goes through) while a
// group of two members consumes.
type clusterRun struct {
	t          *testing.T
	c          *kafkatest.Cluster
	topic      string
	keys       int
	perKey     int
	partitions int

	pub      *broker.Broker
	sent     atomic.Int64 // publishes that returned nil
	failures atomic.Int64 // publishes that returned an error (and were retried)
	errMu    sync.Mutex
	errText  map[string]int // failed publishes by error text, cut at the first colon after the prefix

	mu      sync.Mutex
	handled map[string][]int // key -> sequence numbers in handling order
	count   int

	logs testutil.LogBuffer // the brokers' logs: failed settles
}

const clusterGroup = "cluster"

// startClusterRun creates a replicated topic whose partitions all lead on
// broker leader, and starts the two group members.
func startClusterRun(t *testing.T, c *kafkatest.Cluster, leader int32, keys, perKey int, opts ...kafkabroker.Option) *clusterRun {
	t.Helper()
	const partitions = 4
	r := &clusterRun{t: t, c: c, topic: topicName(t), keys: keys, perKey: perKey, partitions: partitions,
		errText: map[string]int{}, handled: map[string][]int{}}
	c.CreateReplicatedTopic(t, r.topic, partitions, 3)
	for p := range int32(partitions) {
		if err := c.Fake().MoveTopicPartition(r.topic, p, leader); err != nil {
			t.Fatal(err)
		}
	}
	// A session of several seconds keeps a member starved of CPU from
	// being evicted while the cluster changes under it.
	timings := []kafkabroker.Option{
		kafkabroker.WithConsumerGroupConfig(func(gc *kafka.ConsumerGroupConfig) {
			gc.SessionTimeout, gc.RebalanceTimeout = 6*time.Second, 10*time.Second
		}),
	}
	for i := range 2 {
		b := broker.New(newTransport(t, c, append(timings, opts...)...),
			broker.WithLogger(slog.New(slog.NewJSONHandler(&r.logs, nil))))
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			_ = b.Close(ctx)
		})
		if err := b.Subscribe(r.topic, func(_ context.Context, m *broker.Message) error {
			seq, err := strconv.Atoi(string(m.Body))
			if err != nil {
				t.Errorf("member %d: body %q", i, m.Body)
				return nil
			}
			r.mu.Lock()
			r.handled[string(m.Key)] = append(r.handled[string(m.Key)], seq)
			r.count++
			r.mu.Unlock()
			return nil
		}, broker.Group(clusterGroup)); err != nil {
			t.Fatal(err)
		}
		start(t, b)
	}
	r.pub = newBroker(t, c, opts...)
	return r
}

// publish runs one publisher per key to the end of its sequence and returns
// once all are done. at is called by the first publisher after each
// message it published, with the number of messages it published so far.
func (r *clusterRun) publish(at func(n int)) {
	r.t.Helper()
	var wg sync.WaitGroup
	deadline := time.Now().Add(2 * time.Minute)
	for k := range r.keys {
		wg.Go(func() {
			key := []byte("key-" + strconv.Itoa(k))
			for seq := range r.perKey {
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					err := r.pub.Publish(ctx, &broker.Message{Destination: r.topic, Key: key, Body: []byte(strconv.Itoa(seq))})
					cancel()
					if err == nil {
						r.sent.Add(1)
						break
					}
					r.failures.Add(1)
					r.errMu.Lock()
					r.errText[errClass(err)]++
					r.errMu.Unlock()
					if time.Now().After(deadline) {
						r.t.Errorf("key %d: message %d not published before the deadline: %v", k, seq, err)
						return
					}
				}
				if k == 0 && at != nil {
					at(seq + 1)
				}
			}
		})
	}
	wg.Wait()
}

// errClass shortens an error to its leading words for a tally.
func errClass(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

func (r *clusterRun) handledCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

// missing counts the (key, sequence) pairs published and not handled.
func (r *clusterRun) missing() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for k := range r.keys {
		seen := make([]bool, r.perKey)
		for _, s := range r.handled["key-"+strconv.Itoa(k)] {
			if s >= 0 && s < r.perKey {
				seen[s] = true
			}
		}
		for _, ok := range seen {
			if !ok {
				n++
			}
		}
	}
	return n
}

// checkOrder fails the test when some key's sequence, with repeats of
// numbers already seen removed, is not 0, 1, 2, ... in the given order, and
// returns how many repeats it removed.
func checkOrder(t *testing.T, what string, byKey map[string][]int, keys, perKey int) (repeats int) {
	t.Helper()
	for k := range keys {
		key := "key-" + strconv.Itoa(k)
		seen := make(map[int]bool, perKey)
		next := 0
		for _, s := range byKey[key] {
			if seen[s] {
				repeats++
				continue
			}
			seen[s] = true
			if s != next {
				t.Errorf("%s: %s has %d where %d comes next (order per key broken)", what, key, s, next)
				break
			}
			next++
		}
		if next != perKey && !t.Failed() {
			t.Errorf("%s: %s has %d of %d messages", what, key, next, perKey)
		}
	}
	return repeats
}

// stored reads the whole topic back, partition by partition, and returns
// each key's sequence numbers in log order.
func (r *clusterRun) stored() map[string][]int {
	r.t.Helper()
	out := map[string][]int{}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for _, p := range r.c.Fake().PartitionInfos(r.topic) {
		if p.HighWatermark == 0 {
			continue
		}
		rd := kafka.NewReader(kafka.ReaderConfig{Brokers: r.c.Addrs(), Topic: r.topic, Partition: int(p.Partition), MaxWait: 100 * time.Millisecond})
		for {
			m, err := rd.ReadMessage(ctx)
			if err != nil {
				r.t.Fatalf("read back partition %d: %v", p.Partition, err)
			}
			seq, _ := strconv.Atoi(string(m.Value))
			out[string(m.Key)] = append(out[string(m.Key)], seq)
			if m.Offset+1 >= p.HighWatermark {
				break
			}
		}
		_ = rd.Close()
	}
	return out
}

// waitHandled waits until every published message was handled.
func (r *clusterRun) waitHandled() {
	r.t.Helper()
	testutil.Eventually(r.t, time.Minute, func() bool { return r.missing() == 0 },
		fmt.Sprintf("all %d messages handled", r.keys*r.perKey))
}

// finish waits until every published message was handled and checks order
// and duplicates: the log holds every key's sequence in order (duplicates
// only where a publish was retried), and the group handled every message
// with each key's first deliveries in order.
func (r *clusterRun) finish(faults int) {
	r.t.Helper()
	total := r.keys * r.perKey
	r.waitHandled()
	logDup := checkOrder(r.t, "log", r.stored(), r.keys, r.perKey)
	r.mu.Lock()
	handled := make(map[string][]int, len(r.handled))
	for k, v := range r.handled {
		handled[k] = append([]int(nil), v...)
	}
	r.mu.Unlock()
	handledDup := checkOrder(r.t, "handled", handled, r.keys, r.perKey)
	// At most one message per publisher is in flight when a fault
	// strikes, and kafka-go's retries of it go to the same broker or its
	// successor: each fault can store each in-flight message once more.
	if bound := r.keys * faults; logDup > bound {
		r.t.Errorf("%d duplicates in the log, more than the %d messages in flight at %d faults", logDup, bound, faults)
	}
	// The group hands a message out again when its offset was not
	// committed as its partition moved: its commit failed (the
	// coordinator moved, logged as a failed settle), or it was in a
	// handler (one lane per partition), or it was stored twice.
	failedSettles := 0
	for _, rec := range r.logs.Records(r.t) {
		if rec["msg"] == "tracebus: settle failed" {
			failedSettles++
		}
	}
	if bound := failedSettles + logDup + r.partitions*faults; handledDup > bound {
		r.t.Errorf("%d messages handled again, more than %d failed commits + %d stored twice + %d in handlers",
			handledDup, failedSettles, logDup, r.partitions*faults)
	}
	r.errMu.Lock()
	errs := make([]string, 0, len(r.errText))
	for e, n := range r.errText {
		errs = append(errs, fmt.Sprintf("%d× %s", n, e))
	}
	r.errMu.Unlock()
	r.t.Logf("published %d (%d keys × %d), %d failed publishes retried; log duplicates %d; handled %d times (%d again, %d failed commits)",
		total, r.keys, r.perKey, r.failures.Load(), logDup, r.handledCount(), handledDup, failedSettles)
	if len(errs) > 0 {
		r.t.Logf("publish errors: %s", strings.Join(errs, "; "))
	}
}

// otherThan returns a broker id of three that is none of ids.
func otherThan(ids ...int32) int32 {
	for n := range int32(3) {
		taken := false
		for _, id := range ids {
			taken = taken || id == n
		}
		if !taken {
			return n
		}
	}
	return -1
}

// TestClusterLeaderBrokerStopped runs three kfake brokers with a
// replicated topic whose partitions all lead on one broker; that broker is
// stopped a third of the way through the stream (its connections closed,
// its partitions given new leaders, possibly the group's coordinator
// moved) and started again at two thirds. Producers retry and keep each
// key's order; the group moves to the new leaders; nothing is lost;
// duplicates stay within what was in flight.
func TestClusterLeaderBrokerStopped(t *testing.T) {
	c := kafkatest.New(t, kafkatest.WithNumBrokers(3), kafkatest.WithKfakeOptions(kfake.GroupMinSessionTimeout(100*time.Millisecond)))
	if c.External() {
		t.Skip("needs the in-process cluster to stop a broker")
	}
	leader := otherThan(c.Fake().CoordinatorFor(clusterGroup))
	perKey := testkit.Scale(60, 5_000)
	r := startClusterRun(t, c, leader, 8, perKey)
	var stopped, restarted bool
	r.publish(func(n int) {
		switch {
		case !stopped && n >= perKey/3:
			stopped = true
			if err := c.StopBroker(leader); err != nil {
				t.Fatal(err)
			}
			t.Logf("broker %d stopped after %d messages per key", leader, n)
		case !restarted && n >= 2*perKey/3:
			restarted = true
			if err := c.StartBroker(leader); err != nil {
				t.Fatal(err)
			}
			t.Logf("broker %d started again after %d messages per key", leader, n)
		}
	})
	r.finish(2)
}

// TestClusterLeaderBrokerUnreachable makes the broker leading every
// partition unreachable without closing anything (it accepts connections
// and answers nothing); one write timeout later its partitions get new
// leaders, as a controller that lost the broker would do. While the old
// leader stays silent, producers and the group must give up on it, find the
// new leaders and get every message through; then it answers again.
func TestClusterLeaderBrokerUnreachable(t *testing.T) {
	c := kafkatest.New(t, kafkatest.WithNumBrokers(3), kafkatest.WithKfakeOptions(kfake.GroupMinSessionTimeout(100*time.Millisecond)))
	if c.External() {
		t.Skip("needs the in-process cluster to stall a broker")
	}
	coordinator := c.Fake().CoordinatorFor(clusterGroup)
	leader := otherThan(coordinator)
	successor := otherThan(coordinator, leader)
	const writeTimeout = 2 * time.Second
	perKey := testkit.Scale(60, 5_000)
	r := startClusterRun(t, c, leader, 8, perKey, kafkabroker.WithWriterConfig(func(w *kafka.Writer) { w.WriteTimeout = writeTimeout }), kafkabroker.WithDialTimeout(writeTimeout))
	var resume func()
	var moved sync.WaitGroup
	r.publish(func(n int) {
		if resume != nil || n < perKey/3 {
			return
		}
		var err error
		if resume, err = c.StallBroker(leader); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(resume)
		t.Logf("broker %d unreachable after %d messages per key", leader, n)
		moved.Go(func() {
			time.Sleep(writeTimeout) // how long the fault lasts before the controller acts, not a wait
			for _, p := range c.Fake().PartitionInfos(r.topic) {
				if err := c.Fake().MoveTopicPartition(r.topic, p.Partition, successor); err != nil {
					t.Error(err)
				}
			}
			t.Logf("partitions moved to broker %d", successor)
		})
	})
	moved.Wait()
	r.waitHandled()
	t.Logf("every message handled while broker %d was silent", leader)
	resume()
	r.finish(1)
}
