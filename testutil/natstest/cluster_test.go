package natstest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// TestClusterKeepsR3StreamWithoutANode starts three nodes, stores a message
// in a replicated stream, shuts down the node the client is connected to,
// and reads the message back through the remaining two.
func TestClusterKeepsR3StreamWithoutANode(t *testing.T) {
	c := natstest.NewCluster(t, 3)
	if got := strings.Count(c.URLs(), ","); got != 2 {
		t.Fatalf("URLs() = %q, want three URLs", c.URLs())
	}
	nc := c.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "r3", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	used := c.ServerOf(nc)
	if used != 0 {
		t.Fatalf("client on node %d, want the first node (Connect does not randomize)", used)
	}
	c.ShutdownNode(used)
	if c.Server(used) != nil || strings.Count(c.URLs(), ",") != 1 {
		t.Fatalf("node %d still listed after ShutdownNode: %q", used, c.URLs())
	}
	testutil.Eventually(t, time.Minute, func() bool {
		now := c.ServerOf(nc)
		return now >= 0 && now != used
	}, "client fails over to another node")
	testutil.Eventually(t, time.Minute, func() bool {
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		defer rcancel()
		s, err := js.Stream(rctx, "R3")
		if err != nil {
			return false
		}
		m, err := s.GetLastMsgForSubject(rctx, "r3")
		return err == nil && string(m.Data) == "kept"
	}, "message read back from the remaining nodes")
}
