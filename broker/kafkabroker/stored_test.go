package kafkabroker_test

import (
	"context"
	"testing"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/testutil/kafkatest"
)

// After a publish, every accepted message reports the partition it went
// to (asked for, or the balancer's choice) and its offset, matching where
// the consumer finds it; a rejected one reports nothing.
func TestPublishReportsWhereStored(t *testing.T) {
	c := kafkatest.New(t)
	topic := newTopic(t, c, 3)
	b := newBroker(t, c)
	got := collect(t, b, topic)

	msgs := []*broker.Message{
		{Destination: topic, Key: []byte("a"), Body: []byte("keyed a")},
		{Destination: topic, Key: []byte("b"), Body: []byte("keyed b")},
		{Destination: topic, Body: []byte("to 1"), Partition: new(int32(1))},
		{Destination: topic, Body: []byte("to 9"), Partition: new(int32(9))},
	}
	if err := b.PublishBatch(context.Background(), msgs); err == nil {
		t.Fatal("a message for partition 9 of 3 was accepted")
	}
	single := &broker.Message{Destination: topic, Body: []byte("single")}
	if err := b.Publish(context.Background(), single); err != nil {
		t.Fatal(err)
	}
	if msgs[3].Delivery.Stored {
		t.Errorf("the rejected message reports partition %d offset %d", msgs[3].Delivery.Partition, msgs[3].Delivery.Offset)
	}
	if !msgs[2].Delivery.Stored || msgs[2].Delivery.Partition != 1 {
		t.Errorf("explicit partition reported as stored %v partition %d, want partition 1", msgs[2].Delivery.Stored, msgs[2].Delivery.Partition)
	}
	sent := map[string]driver.Delivery{}
	for _, m := range append(msgs[:3:3], single) {
		if !m.Delivery.Stored {
			t.Errorf("%q: not reported as stored", m.Body)
		}
		sent[string(m.Body)] = m.Delivery
	}
	for range sent {
		m := recv(t, got)
		want := sent[string(m.Body)]
		if m.Delivery.Partition != want.Partition || m.Delivery.Offset != want.Offset {
			t.Errorf("%q consumed at %d/%d, reported stored at %d/%d", m.Body,
				m.Delivery.Partition, m.Delivery.Offset, want.Partition, want.Offset)
		}
	}
}
