package testutil_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/testutil"
)

// syncBuffer is an io.Writer safe for the brokers' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// wireWithTransportOptions is a service wired with the options of its
// production transports: a JetStream subscription on NATS, a Kafka
// subscription that starts at the first offset.
func wireWithTransportOptions(nats, kafkaB *broker.Broker) error {
	if err := broker.Handle(nats, "orders.*", func(context.Context, Order) error { return nil },
		broker.Group("billing"), natsbroker.Stream("ORDERS"), natsbroker.MaxHandlingTime(time.Minute)); err != nil {
		return err
	}
	return broker.Handle(kafkaB, "invoices", func(context.Context, Invoice) error { return nil },
		broker.Group("audit"), kafkabroker.StartOffset(kafka.FirstOffset))
}

// TestHarnessIgnoresOtherTransportsOptions runs a service wired with NATS
// and Kafka subscription options on the memory harness: they are checked,
// ignored, logged once each and listed.
func TestHarnessIgnoresOtherTransportsOptions(t *testing.T) {
	var log syncBuffer
	ft := newFakeT(nil)
	ft.out = &log
	var ignored map[string][]string
	completed := ft.run(func() {
		defer ft.finish()
		h := testutil.NewHarness(ft, testutil.WithSyncDelivery())
		nats, kafkaB := h.Broker(), h.Broker()
		if err := wireWithTransportOptions(nats, kafkaB); err != nil {
			t.Errorf("wire: %v", err)
			return
		}
		orders := broker.Must(broker.NewPublisher[Order](nats, "orders.eu"))
		if err := orders.Publish(context.Background(), Order{ID: "1", Quantity: 1}); err != nil {
			t.Errorf("publish: %v", err)
		}
		testutil.AssertHandledOnce(ft, h, "orders.*", Order{ID: "1", Quantity: 1})
		ignored = h.IgnoredOptions()
	})
	if !completed || ft.Failed() {
		t.Fatalf("harness test failed: %s", ft.failures())
	}
	want := map[string][]string{
		"orders.*": {"natsbroker.Stream(ORDERS)", "natsbroker.MaxHandlingTime(1m0s)"},
		"invoices": {"kafkabroker.StartOffset(-2)"},
	}
	if !reflect.DeepEqual(ignored, want) {
		t.Errorf("IgnoredOptions() = %v, want %v", ignored, want)
	}
	// Subscribe and the start both validate the subscription: each option
	// is still logged once.
	if n := strings.Count(log.String(), "option of another transport ignored"); n != 3 {
		t.Errorf("%d log lines about ignored options, want 3:\n%s", n, log.String())
	}
}

// TestHarnessChecksOtherTransportsOptions: what an option's own transport
// refuses without its server fails Subscribe under the harness too.
func TestHarnessChecksOtherTransportsOptions(t *testing.T) {
	h := testutil.NewHarness(t)
	b := h.Broker()
	noop := func(context.Context, *broker.Message) error { return nil }
	for _, c := range []struct {
		name, dest string
		opts       []broker.SubscribeOption
	}{
		{"kafka start offset out of range", "invoices", []broker.SubscribeOption{kafkabroker.StartOffset(-3)}},
		{"kafka absolute offset with a group", "invoices", []broker.SubscribeOption{kafkabroker.StartOffset(5), broker.Group("billing")}},
		{"kafka partitions with a group", "invoices", []broker.SubscribeOption{kafkabroker.Partitions(0), broker.Group("billing")}},
		{"kafka topic with a wildcard", "invoices.*", []broker.SubscribeOption{kafkabroker.StartOffset(kafka.FirstOffset)}},
		{"nats core and jetstream", "orders", []broker.SubscribeOption{natsbroker.Core(), natsbroker.JetStream()}},
		{"nats negative handling time", "orders", []broker.SubscribeOption{natsbroker.MaxHandlingTime(-time.Second)}},
		{"nats zero pending limits", "orders", []broker.SubscribeOption{natsbroker.PendingLimits(0, 0)}},
	} {
		err := b.Subscribe(c.dest, noop, c.opts...)
		if !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("%s: Subscribe: %v, want ErrInvalid", c.name, err)
		}
	}
	if got := h.IgnoredOptions(); len(got) != 0 {
		t.Errorf("IgnoredOptions() = %v after refused subscriptions, want none", got)
	}
}

// TestMemoryRefusesOtherTransportsOptions: outside the harness the memory
// transport refuses them, and so does a harness on a real transport.
func TestMemoryRefusesOtherTransportsOptions(t *testing.T) {
	noop := func(context.Context, *broker.Message) error { return nil }
	b := broker.New(testutil.Memory(t))
	if err := b.Subscribe("orders", noop, natsbroker.Stream("ORDERS")); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("memory transport outside the harness: Subscribe: %v, want ErrUnsupported", err)
	}
	h := testutil.NewHarness(t, testutil.OnNATS(""))
	if err := h.Broker().Subscribe("orders", noop, kafkabroker.StartOffset(kafka.FirstOffset)); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("harness on NATS: Subscribe with a Kafka option: %v, want ErrUnsupported", err)
	}
	if got := h.IgnoredOptions(); got != nil {
		t.Errorf("IgnoredOptions() on NATS = %v, want nil", got)
	}
}
