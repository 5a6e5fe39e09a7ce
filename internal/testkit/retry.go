package testkit

import (
	"context"
	"errors"
	"testing"

	"github.com/tracebus/tracebus/broker"
)

// ErrFirstAttempt is what the handler of DeliverWithOneRetry returns on a
// message's first delivery.
var ErrFirstAttempt = errors.New("payment provider timeout")

// DeliverWithOneRetry subscribes to msg's destination on b with a handler
// that fails the first delivery with ErrFirstAttempt and accepts the
// second (MaxAttempts 2, no backoff, plus opts), starts b, publishes msg,
// waits for the second delivery and closes b. Tests of what a retry looks
// like in spans and logs start here.
func DeliverWithOneRetry(t *testing.T, b *broker.Broker, msg *broker.Message, opts ...broker.SubscribeOption) {
	t.Helper()
	done := make(chan struct{})
	opts = append([]broker.SubscribeOption{broker.MaxAttempts(2), broker.RetryBackoff(broker.ConstantBackoff(0))}, opts...)
	err := b.Subscribe(msg.Destination, func(_ context.Context, m *broker.Message) error {
		if m.Delivery.DeliveryCount == 1 {
			return ErrFirstAttempt
		}
		close(done)
		return nil
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := b.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}
