package broker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/testutil"
)

// Settle middleware that misbehaves (drops ctx, makes its own Settlement,
// panics) never leaves a delivery unsettled and never panics the
// transport's goroutine.
func TestSettleMiddlewareCannotBreakSettlement(t *testing.T) {
	cases := map[string]func(next driver.SettleFunc) driver.SettleFunc{
		"fresh ctx": func(next driver.SettleFunc) driver.SettleFunc {
			return func(_ context.Context, op driver.Operation, msgs []*broker.Message, s driver.Settlement) error {
				return next(context.Background(), op, msgs, s)
			}
		},
		"own settlement": func(next driver.SettleFunc) driver.SettleFunc {
			return func(ctx context.Context, op driver.Operation, msgs []*broker.Message, s driver.Settlement) error {
				return next(ctx, op, msgs, driver.Settlement{Action: s.Action, Delay: s.Delay})
			}
		},
		"panics": func(driver.SettleFunc) driver.SettleFunc {
			return func(context.Context, driver.Operation, []*broker.Message, driver.Settlement) error {
				panic("settle middleware bug")
			}
		},
		"never calls next": func(driver.SettleFunc) driver.SettleFunc {
			return func(context.Context, driver.Operation, []*broker.Message, driver.Settlement) error { return nil }
		},
	}
	for name, wrap := range cases {
		t.Run(name, func(t *testing.T) {
			b := broker.New(testutil.Memory(t), broker.WithLogger(discardLogger()),
				broker.WithMiddleware(driver.MiddlewareFuncs{Settle: wrap}))
			calls := make(chan int, 10)
			n := 0
			must(t, b.Subscribe("q", func(ctx context.Context, msg *broker.Message) error {
				n++
				calls <- msg.Delivery.DeliveryCount
				if n == 1 {
					return errors.New("first attempt fails")
				}
				return nil
			}, broker.RetryBackoff(broker.ConstantBackoff(time.Millisecond))))
			must(t, b.Start(t.Context()))
			defer b.Close(context.Background())
			must(t, b.Publish(t.Context(), &broker.Message{Destination: "q", Body: []byte("x")}))
			// The failed attempt was naked (delivered again), the second
			// acked: nothing more arrives.
			for want := 1; want <= 2; want++ {
				select {
				case got := <-calls:
					if got != want {
						t.Fatalf("delivery count %d, want %d", got, want)
					}
				case <-time.After(time.Minute):
					t.Fatalf("delivery %d never came", want)
				}
			}
			must(t, b.Close(context.Background()))
			if len(calls) != 0 {
				t.Fatalf("%d extra deliveries", len(calls))
			}
		})
	}
}
