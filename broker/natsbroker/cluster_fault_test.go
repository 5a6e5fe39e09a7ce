package natsbroker_test

import (
	"context"
	"fmt"
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

// TestClusterFailover runs plain and batch JetStream subscriptions against
// a three-node cluster with a replicated (R3) stream and shuts down the node
// the client is connected to halfway through publishing. The client knows
// every node, fails over without user code, and every message published
// before, around and after the shutdown is handled at least once.
func TestClusterFailover(t *testing.T) {
	perSubject := testkit.Scale(300, 20_000)
	cluster := natstest.NewCluster(t, 3)
	nc := cluster.Connect(t,
		natsgo.Name("tracebus-failover"),
		natsgo.ErrorHandler(func(*natsgo.Conn, *natsgo.Subscription, error) {}),
	)
	js, err := jetstream.New(cluster.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "FAILOVER", Subjects: []string{"failover.>"}, Storage: jetstream.FileStorage, Replicas: 3,
	}); err != nil {
		t.Fatalf("create R3 stream: %v", err)
	}

	b := broker.New(newTransport(t, nc, natsbroker.WithJetStream("failover.>")))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	// Acks sent to the node that goes away are lost: a short AckWait
	// brings those messages back quickly.
	ackWait := natsbroker.ConfigureConsumer(func(c *jetstream.ConsumerConfig) { c.AckWait = time.Second })
	jobs, batched := newSeen(), newSeen()
	if err := b.Subscribe("failover.jobs", func(_ context.Context, m *broker.Message) error {
		jobs.add(string(m.Body))
		return nil
	}, broker.Name("jobs"), ackWait); err != nil {
		t.Fatal(err)
	}
	if err := b.SubscribeBatch("failover.batch", func(_ context.Context, msgs []*broker.Message) error {
		for _, m := range msgs {
			batched.add(string(m.Body))
		}
		return nil
	}, broker.Name("batch"), broker.Batch(50, 50*time.Millisecond), ackWait); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}

	// publish retries until the cluster takes the message: during the
	// failover the first attempts fail, and the message id makes a retry
	// of a message that did arrive a duplicate the stream drops.
	publish := func(subject, body string) {
		t.Helper()
		testutil.Eventually(t, time.Minute, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			return b.Publish(ctx, &broker.Message{Destination: subject, ID: subject + "/" + body, Body: []byte(body)}) == nil
		}, "publish "+body)
	}
	var want []string
	killed := -1
	for i := range perSubject {
		if i == perSubject/2 {
			killed = cluster.ServerOf(nc)
			if killed < 0 {
				t.Fatal("the client is not connected to any node of the cluster")
			}
			cluster.ShutdownNode(killed)
		}
		body := fmt.Sprintf("m-%d", i)
		publish("failover.jobs", body)
		publish("failover.batch", body)
		want = append(want, body)
	}
	if now := cluster.ServerOf(nc); now == killed || now < 0 {
		t.Fatalf("client on node %d after node %d was shut down", now, killed)
	}
	testutil.Eventually(t, 60*time.Second, func() bool {
		return len(jobs.missing(want)) == 0 && len(batched.missing(want)) == 0
	}, "every message handled after the failover")
	if missing := jobs.missing(want); len(missing) > 0 {
		t.Errorf("lost %d messages: %v", len(missing), missing)
	}
	if missing := batched.missing(want); len(missing) > 0 {
		t.Errorf("lost %d messages in batches: %v", len(missing), missing)
	}
	t.Logf("%d messages per subscription; node %d shut down, client moved to node %d", perSubject, killed, cluster.ServerOf(nc))
}
