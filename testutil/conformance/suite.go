package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
)

// Features says what a transport promises, so that the suites test exactly
// that and skip the rest.
type Features struct {
	// Groups: subscriptions in the same group share messages, each to one
	// member.
	Groups bool
	// Batch: SubscribeBatch forms batches of more than one message.
	Batch bool
	// Ordered: one publisher's messages to one destination (with one key,
	// on Kafka) arrive in publish order at a subscription with concurrency 1.
	Ordered bool
	// Persistent: messages are stored, so a message published before a
	// subscription (re)starts is delivered, and an acknowledged one is not
	// delivered again to the same group or durable name.
	Persistent bool
	// Keys: Message.Key round-trips.
	Keys bool
	// Partitions: deliveries report Kafka partitions and offsets.
	Partitions bool
	// Wildcards: NATS-style subject patterns ("dest.*", "dest.>").
	Wildcards bool
	// MessageID: Message.ID round-trips.
	MessageID bool
	// Concurrent: Concurrency(n) runs n deliveries of one destination at
	// once (false where parallelism needs several partitions).
	Concurrent bool
	// NoResponders: a request to a destination nobody subscribes to fails
	// at once with broker.ErrNoResponders instead of timing out.
	NoResponders bool
	// Synchronous: Publish returns after the handlers ran (the memory
	// transport WithSyncDelivery), so batches form per publish call rather
	// than over time and redelivery delays are not waited for; the suites
	// skip the tests that depend on time. TestTransport, whose handlers
	// wait for the test goroutine, does not apply.
	Synchronous bool
}

// Suite describes a transport to the suites.
type Suite struct {
	// New returns a new transport connected to the same backend as every
	// other transport New returns in the same test. It is called at least
	// once per test; the broker that owns the transport closes it.
	New func(t *testing.T) driver.Transport
	// Prepare, if set, creates what destination needs before it is used (a
	// JetStream stream, a Kafka topic). Suites use destinations without
	// dots; for Wildcards, Prepare must also cover destination+".>".
	Prepare func(t *testing.T, destination string)
	// SubscribeOptions are added to every subscription the suites make.
	SubscribeOptions []broker.SubscribeOption
	// Features says what the transport promises.
	Features Features
	// Timeout bounds every wait for a condition; a minute when zero. A passing
	// test never waits this long: it is room for a loaded machine.
	Timeout time.Duration
}

// Destination returns a destination unique to this test run, made of
// lower-case letters, digits and dashes, prepared with s.Prepare.
func (s Suite) Destination(t *testing.T) string {
	t.Helper()
	name := strings.ToLower(t.Name())
	name = name[strings.LastIndexByte(name, '/')+1:]
	var b strings.Builder
	for _, r := range name {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	short := strings.Trim(b.String(), "-")
	if len(short) > 24 {
		short = short[:24]
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	dest := "tb-" + short + "-" + hex.EncodeToString(rnd[:])
	if s.Prepare != nil {
		s.Prepare(t, dest)
	}
	return dest
}

// Wait returns the per-condition wait limit.
func (s Suite) Wait() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return time.Minute
}

// Broker returns a broker over a new transport from s.New, closed when the
// test ends. It is not started.
func (s Suite) Broker(t *testing.T, opts ...broker.Option) *broker.Broker {
	t.Helper()
	b := broker.New(s.New(t), opts...)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.Wait())
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("close broker: %v", err)
		}
	})
	return b
}

// Start starts b, failing the test on error.
func (s Suite) Start(t *testing.T, b *broker.Broker) {
	t.Helper()
	if err := b.Start(context.Background()); err != nil {
		t.Fatalf("start broker: %v", err)
	}
}

// Options returns s.SubscribeOptions followed by extra.
func (s Suite) Options(extra ...broker.SubscribeOption) []broker.SubscribeOption {
	return append(append([]broker.SubscribeOption(nil), s.SubscribeOptions...), extra...)
}
