package natsbroker_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// A PublishTo publisher of another broker loops back to the subscription
// when both transports are connected to the same server, and not when
// they are connected to different ones.
func TestPublishToLoopAcrossBrokers(t *testing.T) {
	srv, other := natstest.New(t), natstest.New(t)
	b := broker.New(connect(t, srv))
	bill := func(_ context.Context, s string) (string, error) { return s, nil }

	same := broker.New(connect(t, srv))
	err := broker.HandleResult(b, "orders.*", bill, broker.PublishTo(broker.Must(broker.NewPublisher[string](same, "orders.billed"))))
	if !errors.Is(err, broker.ErrInvalid) {
		t.Errorf("publisher on another connection to the same server: %v, want ErrInvalid", err)
	}
	elsewhere := broker.New(connect(t, other))
	must(t, broker.HandleResult(b, "orders.*", bill, broker.PublishTo(broker.Must(broker.NewPublisher[string](elsewhere, "orders.billed")))))
	for _, bk := range []*broker.Broker{b, same, elsewhere} {
		must(t, bk.Close(context.Background()))
	}
}
