package broker_test

import (
	"context"
	"testing"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/conformance"
)

// Every published message gets a unique id unless the caller set one, and
// the consumer sees the id the publisher sent.
func TestPublishGivesMessageIDs(t *testing.T) {
	b := broker.New(testutil.Memory(t))
	in := testkit.NewInbox[string](conformance.Suite{}.Wait())
	must(t, b.Subscribe("ids", func(_ context.Context, m *broker.Message) error { in.Put(m.ID); return nil }))
	must(t, b.Start(t.Context()))
	defer func() { must(t, b.Close(context.Background())) }()

	own := &broker.Message{Destination: "ids", ID: "order-42"}
	plain := &broker.Message{Destination: "ids"}
	batch := []*broker.Message{{Destination: "ids"}, {Destination: "ids"}}
	must(t, b.Publish(t.Context(), own))
	must(t, b.Publish(t.Context(), plain))
	must(t, b.PublishBatch(t.Context(), batch))
	must(t, broker.Must(broker.NewPublisher[order](b, "ids")).Publish(t.Context(), order{ID: "1"}))

	if own.ID != "order-42" {
		t.Errorf("the caller's id became %q", own.ID)
	}
	sent := map[string]bool{own.ID: true, plain.ID: true, batch[0].ID: true, batch[1].ID: true}
	if len(sent) != 4 || sent[""] {
		t.Fatalf("ids %q, %q, %q, %q: want four different, none empty", own.ID, plain.ID, batch[0].ID, batch[1].ID)
	}
	got := in.TakeN(t, 5)
	typed := 0
	for _, id := range got {
		switch {
		case id == "":
			t.Error("a message arrived without an id")
		case !sent[id]:
			typed++
		}
	}
	if typed != 1 {
		t.Errorf("delivered ids %q, want the four sent and one of the typed publish", got)
	}
}
