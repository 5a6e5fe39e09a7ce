package natsbroker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// waitStreamLeader waits until stream has a leader other than the nodes
// in not and returns it.
func waitStreamLeader(t *testing.T, c *natstest.Cluster, js jetstream.JetStream, stream string, not ...int) int {
	t.Helper()
	leader := -1
	testutil.Eventually(t, time.Minute, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		l, err := c.StreamLeader(ctx, js, stream)
		if err != nil || l < 0 {
			return false
		}
		for _, n := range not {
			if l == n {
				return false
			}
		}
		leader = l
		return true
	}, "stream "+stream+" has a leader")
	return leader
}

// handledLog records what a subscription handled and when.
type handledLog struct {
	*seen
	mu   sync.Mutex
	last time.Time
}

func (h *handledLog) add(body string) {
	h.seen.add(body)
	h.mu.Lock()
	h.last = time.Now()
	h.mu.Unlock()
}

func (h *handledLog) firstSince(t0 time.Time, want func() bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last.After(t0) && want()
}

// TestClusterStreamLeaderAndQuorumLost runs a JetStream subscription on a
// three-node cluster with an R3 stream. The client uses a node that does
// not lead the stream. Mid-stream the stream's leader is shut down: a new
// leader is elected and publishing and consuming go on. Then a second node
// is shut down: without a quorum, publishes fail with an error that
// matches broker.ErrUnavailable (no responders once the leader stepped
// down, or no acknowledgement in time while it has not noticed), and
// nothing is consumed. When both nodes
// come back, publishes succeed and consumption resumes without user code;
// every message whose publish succeeded is handled. The time from the
// restart to the first publish accepted and the first message handled is
// logged.
func TestClusterStreamLeaderAndQuorumLost(t *testing.T) {
	perPhase := testkit.Scale(100, 5_000)
	cluster := natstest.NewCluster(t, 3)
	admin, err := jetstream.New(cluster.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.CreateStream(ctx, jetstream.StreamConfig{
		Name: "QUORUM", Subjects: []string{"quorum.>"}, Storage: jetstream.FileStorage, Replicas: 3,
	}); err != nil {
		t.Fatalf("create R3 stream: %v", err)
	}
	leader := waitStreamLeader(t, cluster, admin, "QUORUM")
	client := (leader + 1) % 3
	nc := cluster.ConnectVia(t, client,
		natsgo.Name("tracebus-quorum"),
		natsgo.ErrorHandler(func(*natsgo.Conn, *natsgo.Subscription, error) {}),
	)
	if got := cluster.ServerOf(nc); got != client {
		t.Fatalf("client on node %d, want %d", got, client)
	}

	b := broker.New(newTransport(t, nc, natsbroker.WithJetStream("quorum.>")))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	got := &handledLog{seen: newSeen()}
	// Acks sent while the consumer has no leader are lost: a short
	// AckWait brings those messages back soon after the quorum returns.
	if err := b.Subscribe("quorum.jobs", func(_ context.Context, m *broker.Message) error {
		got.add(string(m.Body))
		return nil
	}, broker.Name("jobs"), natsbroker.ConfigureConsumer(func(c *jetstream.ConsumerConfig) { c.AckWait = 2 * time.Second })); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}

	var acked []string // bodies whose publish returned nil
	tryPublish := func(body string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err := b.Publish(ctx, &broker.Message{Destination: "quorum.jobs", ID: body, Body: []byte(body)})
		if err == nil {
			acked = append(acked, body)
		}
		return err
	}
	// publish retries until the cluster takes the message; the message id
	// makes a retry of a message that did arrive a duplicate the stream
	// drops.
	publish := func(body string) {
		t.Helper()
		testutil.Eventually(t, time.Minute, func() bool { return tryPublish(body) == nil }, "publish "+body)
	}
	n := 0
	phase := func() {
		for range perPhase {
			publish(fmt.Sprintf("m-%d", n))
			n++
		}
	}

	phase()
	cluster.ShutdownNode(leader)
	phase() // the first of these wait for the new leader
	newLeader := waitStreamLeader(t, cluster, admin, "QUORUM", leader)
	testutil.Eventually(t, time.Minute, func() bool { return len(got.missing(acked)) == 0 },
		"every message handled after the stream leader was lost")
	t.Logf("stream leader node %d shut down; node %d leads now; client stayed on node %d", leader, newLeader, cluster.ServerOf(nc))

	// Two nodes of three down: the stream has no quorum.
	other := 3 - leader - client
	down := time.Now()
	cluster.ShutdownNode(other)
	var noQuorum error
	for i := 0; noQuorum == nil && i < 100; i++ {
		// The stream may take one last message before it notices.
		noQuorum = tryPublish(fmt.Sprintf("m-%d", n))
		n++
	}
	if noQuorum == nil {
		t.Fatal("publishes still succeed with two of three nodes down")
	}
	t.Logf("publish without quorum: %v", noQuorum)
	if !errors.Is(noQuorum, broker.ErrUnavailable) {
		t.Errorf("publish without quorum returned %v; want an error matching broker.ErrUnavailable", noQuorum)
	}
	handledBefore := len(acked) - len(got.missing(acked))

	cluster.RestartNode(t, leader)
	cluster.RestartNode(t, other)
	restarted := time.Now()
	var firstAccepted time.Duration
	testutil.Eventually(t, 2*time.Minute, func() bool {
		err := tryPublish(fmt.Sprintf("m-%d", n))
		n++
		if err == nil {
			firstAccepted = time.Since(restarted)
		}
		return err == nil
	}, "a publish accepted after the nodes returned")
	resumeMark := acked[len(acked)-1]
	testutil.Eventually(t, 2*time.Minute, func() bool {
		return got.firstSince(restarted, func() bool { return got.has(resumeMark) })
	}, "consumption resumed")
	firstHandled := time.Since(restarted)
	phase()
	testutil.Eventually(t, 2*time.Minute, func() bool { return len(got.missing(acked)) == 0 },
		"every acknowledged message handled after the quorum returned")
	if missing := got.missing(acked); len(missing) > 0 {
		t.Errorf("lost %d acknowledged messages: %v", len(missing), missing)
	}
	t.Logf("%d messages acknowledged, %d handled before the quorum was lost; without quorum for %v; after the restart the first publish was accepted in %v, the first new message handled in %v",
		len(acked), handledBefore, restarted.Sub(down).Round(time.Millisecond), firstAccepted.Round(time.Millisecond), firstHandled.Round(time.Millisecond))
}
