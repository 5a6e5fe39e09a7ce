package kafkabroker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/codec"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/testutil/kafkatest"
)

// Partitions reads the partitions given from the offset given, and nothing
// of the other partitions or before the offset; acknowledging commits
// nothing, and a retry delivers the same message again in place.
func TestPartitionsFromOffset(t *testing.T) {
	c := kafkatest.New(t)
	topic := newTopic(t, c, 3)
	b := newBroker(t, c)
	ctx := context.Background()
	for p := range 3 {
		for i := range 4 {
			body := fmt.Sprintf("p%d-%d", p, i)
			if i == 3 {
				body = fmt.Sprintf("p%d-end", p)
			}
			if err := b.Publish(ctx, &broker.Message{Destination: topic, Partition: new(int32(p)), Body: []byte(body)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := make(chan *broker.Message, 20)
	var failed atomic.Bool
	err := b.Subscribe(topic, func(_ context.Context, m *broker.Message) error {
		got <- m.Clone()
		if string(m.Body) == "p2-2" && failed.CompareAndSwap(false, true) {
			return errors.New("once")
		}
		return nil
	}, kafkabroker.Partitions(2, 0, 2), kafkabroker.StartOffset(1), broker.RetryBackoff(broker.ConstantBackoff(time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	start(t, b)
	var bodies []string
	ends := 0
	for ends < 2 {
		m := recv(t, got)
		if d := m.Delivery; d.Partition != 0 && d.Partition != 2 || d.Offset < 1 {
			t.Fatalf("delivered %q from partition %d offset %d", m.Body, m.Delivery.Partition, m.Delivery.Offset)
		}
		if m.Delivery.DeliveryCount > 1 && string(m.Body) != "p2-2" {
			t.Fatalf("%q delivered %d times", m.Body, m.Delivery.DeliveryCount)
		}
		bodies = append(bodies, string(m.Body))
		if strings.HasSuffix(string(m.Body), "-end") {
			ends++
		}
	}
	closeCtx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := b.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	close(got)
	for m := range got {
		bodies = append(bodies, string(m.Body))
	}
	slices.Sort(bodies)
	want := []string{"p0-1", "p0-2", "p0-end", "p2-1", "p2-2", "p2-2", "p2-end"}
	if !slices.Equal(bodies, want) {
		t.Fatalf("delivered %q, want %q", bodies, want)
	}
	// There is no group: nothing was committed anywhere.
	groups, err := c.Client().ListGroups(ctx, &kafka.ListGroupsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(groups.Groups) != 0 {
		t.Fatalf("groups %v after a subscription without a group", groups.Groups)
	}
}

// Partitions reads without a group: a group, a pattern, no partition or a
// negative one fail Subscribe with ErrInvalid; a partition the topic does
// not have fails Start with ErrUnknownPartition naming it.
func TestPartitionsRefused(t *testing.T) {
	c := kafkatest.New(t)
	topic := newTopic(t, c, 2)
	b := newBroker(t, c)
	noop := func(context.Context, *broker.Message) error { return nil }
	for name, opts := range map[string][]broker.SubscribeOption{
		"with a group":       {kafkabroker.Partitions(0), broker.Group("g")},
		"no partition":       {kafkabroker.Partitions()},
		"negative":           {kafkabroker.Partitions(0, -1)},
		"offset for a group": {kafkabroker.StartOffset(3), broker.Group("g")},
		"offset below -2":    {kafkabroker.StartOffset(-3)},
	} {
		if err := b.Subscribe(topic, noop, opts...); !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if err := b.Subscribe(topic, noop, kafkabroker.Partitions(1, 7)); err != nil {
		t.Fatal(err)
	}
	err := b.Start(context.Background())
	if !errors.Is(err, kafkabroker.ErrUnknownPartition) || !strings.Contains(err.Error(), "partition 7") {
		t.Fatalf("Start: %v, want ErrUnknownPartition naming partition 7", err)
	}
}

// TestPullPartitions: a Puller with Partitions and an absolute StartOffset
// takes only those partitions from that offset; a Pattern cannot be pulled.
func TestPullPartitions(t *testing.T) {
	c := kafkatest.New(t)
	topic := newTopic(t, c, 3)
	b := newBroker(t, c)
	ctx := context.Background()
	for p := range 3 {
		for i := range 3 {
			body := fmt.Sprintf("p%d-%d", p, i)
			if err := b.Publish(ctx, &broker.Message{Destination: topic, Partition: new(int32(p)), Body: []byte(body)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Refused when it is made, before any Start.
	if _, err := broker.NewPuller[string](b, topic+".*", kafkabroker.Pattern()); !errors.Is(err, broker.ErrInvalid) {
		t.Errorf("a Pattern puller: %v, want ErrInvalid", err)
	}
	p, err := broker.NewPuller[string](b, topic, kafkabroker.Partitions(1), kafkabroker.StartOffset(1), broker.Codec(codec.Text))
	if err != nil {
		t.Fatal(err)
	}
	start(t, b)
	var got []string
	for range 2 {
		gctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := p.Get(gctx, func(_ context.Context, s string) error { got = append(got, s); return nil })
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(got) != "[p1-1 p1-2]" {
		t.Errorf("pulled %v, want [p1-1 p1-2]", got)
	}
	gctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := p.Get(gctx, func(context.Context, string) error { return nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a third Get: %v, want the deadline (nothing else in partition 1)", err)
	}

}
