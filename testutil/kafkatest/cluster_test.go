package kafkatest_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/tracebus/tracebus/testutil/kafkatest"
)

func TestClusterRoundTrip(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("brokers-%d", n), func(t *testing.T) {
			t.Setenv(kafkatest.EnvBrokers, "")
			c := kafkatest.New(t, kafkatest.WithNumBrokers(n))
			if c.External() || c.Fake() == nil {
				t.Fatal("want an in-process cluster")
			}
			if got := len(c.Addrs()); got != n {
				t.Fatalf("%d addresses, want %d", got, n)
			}
			c.CreateTopic(t, "round-trip", 3)
			c.CreateTopic(t, "round-trip", 3) // existing: no error

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			w := &kafka.Writer{Addr: kafka.TCP(c.Addrs()...), BatchTimeout: time.Millisecond, AllowAutoTopicCreation: true}
			defer w.Close()
			if err := w.WriteMessages(ctx, kafka.Message{Topic: "round-trip", Value: []byte("hello")}); err != nil {
				t.Fatal(err)
			}
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: c.Addrs(), Topic: "round-trip", GroupID: "g", MaxWait: 100 * time.Millisecond})
			defer r.Close()
			m, err := r.ReadMessage(ctx)
			if err != nil || string(m.Value) != "hello" {
				t.Fatalf("read %q, %v", m.Value, err)
			}
		})
	}
}

// EnvBrokers points New at an existing cluster instead of starting one.
func TestExternalCluster(t *testing.T) {
	t.Setenv(kafkatest.EnvBrokers, "")
	inner := kafkatest.New(t)
	t.Setenv(kafkatest.EnvBrokers, " "+strings.Join(inner.Addrs(), " , ")+" ,")
	c := kafkatest.New(t, kafkatest.WithNumBrokers(3)) // ignored for an external cluster
	if !c.External() || c.Fake() != nil {
		t.Fatal("want the external cluster")
	}
	if !slices.Equal(c.Addrs(), inner.Addrs()) {
		t.Fatalf("addresses %q, want %q", c.Addrs(), inner.Addrs())
	}
	c.CreateTopic(t, "external", 1)
	c.Close() // leaves the external cluster running
	inner.CreateTopic(t, "still-running", 1)
}
