package memory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/memory"
	"github.com/tracebus/tracebus/testutil"
)

// A group member that closes while one of its messages waits for a delayed
// redelivery hands that message to the rest of the group, as it does with
// the messages still queued: the message is not lost, and the redelivery
// still waits for its backoff (Nak: "not before delay").
func TestGroupMemberCloseKeepsPendingRedelivery(t *testing.T) {
	for _, tc := range []struct {
		name string
		// duringHandler: Close begins while the failing handler still
		// runs, so the Nak reaches a subscription that is already closing.
		duringHandler bool
	}{
		{name: "nak before close"},
		{name: "nak during close", duringHandler: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := memory.NewServer()
			const backoff = 300 * time.Millisecond
			failedBy := make(chan int, 1)
			release := make(chan struct{})
			nakAt := make(chan time.Time, 1)
			redelivered := make(chan int, 1)
			settle := driver.MiddlewareFuncs{Settle: func(next driver.SettleFunc) driver.SettleFunc {
				return func(ctx context.Context, op driver.Operation, msgs []*broker.Message, st driver.Settlement) error {
					if st.Action == driver.Nak {
						nakAt <- time.Now()
					}
					return next(ctx, op, msgs, st)
				}
			}}
			var brokers [2]*broker.Broker
			for i := range brokers {
				b := broker.New(testutil.Memory(t, memory.WithServer(srv)), broker.WithMiddleware(settle))
				brokers[i] = b
				err := b.Subscribe("jobs", func(_ context.Context, m *broker.Message) error {
					if m.Delivery.DeliveryCount == 1 {
						failedBy <- i
						<-release
						return errors.New("try again later")
					}
					redelivered <- m.Delivery.DeliveryCount
					return nil
				}, broker.Group("workers"), broker.RetryBackoff(broker.ConstantBackoff(backoff)))
				if err != nil {
					t.Fatal(err)
				}
				if err := b.Start(t.Context()); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = b.Close(context.Background()) })
			}
			if err := brokers[0].Publish(t.Context(), &broker.Message{Destination: "jobs", Body: []byte("x")}); err != nil {
				t.Fatal(err)
			}
			var who int
			select {
			case who = <-failedBy:
			case <-time.After(time.Minute):
				t.Fatal("no first delivery")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// nak is taken before the Nak reaches the transport, so time
			// since it never understates the time since the Nak.
			var nak time.Time
			waitNak := func() {
				select {
				case nak = <-nakAt:
				case <-time.After(time.Minute):
					t.Fatal("the failed delivery was not nakked")
				}
			}
			if !tc.duringHandler {
				close(release)
				waitNak()
				if err := brokers[who].Close(ctx); err != nil {
					t.Fatal(err)
				}
			} else {
				closed := make(chan error, 1)
				go func() { closed <- brokers[who].Close(ctx) }()
				// Let the handler fail once Close has begun: publishing
				// through the closing broker still works, subscribing
				// does not.
				deadline := time.Now().Add(time.Minute)
				for !errors.Is(brokers[who].Subscribe("probe", func(context.Context, *broker.Message) error { return nil }), broker.ErrClosed) {
					if time.Now().After(deadline) {
						t.Fatal("Close did not begin")
					}
					time.Sleep(time.Millisecond)
				}
				close(release)
				if err := <-closed; err != nil {
					t.Fatal(err)
				}
				waitNak()
			}
			select {
			case n := <-redelivered:
				if n != 2 {
					t.Fatalf("redelivered with DeliveryCount %d, want 2", n)
				}
				if d := time.Since(nak); d < backoff {
					t.Fatalf("redelivered %v after the Nak, before the %v backoff", d, backoff)
				}
			case <-time.After(time.Minute):
				t.Fatal("the message awaiting redelivery was lost when its group member closed")
			}
		})
	}
}
