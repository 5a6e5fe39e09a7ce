package broker_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	kafka "github.com/segmentio/kafka-go"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/codec"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/kafkatest"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// envAppHeavy, when set, makes the NATS-to-Kafka shutdown test push ten
// times as many orders through.
const envAppHeavy = "TRACEBUS_APP_HEAVY"

// shipperConcurrency is how many orders a shipper handles at once.
const shipperConcurrency = 4

type shipment struct {
	Order string `json:"order"`
}

// shipper is a service that consumes orders from JetStream and publishes a
// shipment for each to Kafka: two brokers, one App.
type shipper struct {
	app       *broker.App
	in        *broker.Broker
	entered   atomic.Int64
	published atomic.Int64
	pubErrs   chan error
}

// newShipper wires the service. Handlers after the first pass ones wait
// for gate (nil: none waits).
func newShipper(t *testing.T, srv *natstest.Server, cluster *kafkatest.Cluster, pass int64, gate <-chan struct{}, n int) *shipper {
	t.Helper()
	kt, err := kafkabroker.New(cluster.TransportOptions()...)
	must(t, err)
	nt, err := natsbroker.New(srv.Connect(t), natsbroker.WithJetStream("orders.>"))
	if err != nil {
		t.Fatal(err)
	}
	in := broker.New(nt)
	out := broker.New(kt)
	s := &shipper{in: in, pubErrs: make(chan error, n)}
	ship := broker.Must(broker.NewPublisher[shipment](out, "shipments"))
	must(t, broker.Handle(in, "orders.new", func(ctx context.Context, o order) error {
		if s.entered.Add(1) > pass && gate != nil {
			<-gate
		}
		if err := ship.Publish(ctx, shipment{Order: o.ID}); err != nil {
			s.pubErrs <- err
			return err
		}
		s.published.Add(1)
		return nil
	}, broker.Name("shipper"), broker.Concurrency(shipperConcurrency)))
	s.app = broker.NewApp(broker.WithBrokers(in, out))
	return s
}

// A NATS-in, Kafka-out service stopped in the middle of a stream of orders
// loses none: the handlers in flight when the stop begins still publish to
// Kafka (never failing with "closed"), what was not processed stays in the
// stream, and a restarted service ships the rest.
func TestAppNATSToKafkaStopMidStreamLosesNothing(t *testing.T) {
	n := 200
	if os.Getenv(envAppHeavy) != "" {
		n = 2000
	}
	// A quarter of the orders are shipped before the stop begins.
	pass, concurrency := int64(n/4), int64(shipperConcurrency)
	srv := natstest.New(t)
	cluster := kafkatest.New(t)
	cluster.CreateTopic(t, "shipments", 1)

	ctx := t.Context()
	js, err := jetstream.New(srv.Connect(t))
	must(t, err)
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}})
	must(t, err)
	for i := range n {
		id := strconv.Itoa(i)
		_, err := js.Publish(ctx, "orders.new", []byte(`{"id":"`+id+`"}`), jetstream.WithMsgID(id))
		must(t, err)
	}

	gate := make(chan struct{})
	first := newShipper(t, srv, cluster, pass, gate, n)
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- first.app.Run(runCtx) }()
	// Every worker is held once pass+concurrency handlers have begun.
	testutil.Eventually(t, time.Minute, func() bool { return first.entered.Load() == pass+concurrency },
		"the service did not take its first orders")
	stop()
	testutil.Eventually(t, time.Minute, func() bool {
		return errors.Is(first.in.Subscribe("probe", noop), broker.ErrClosed)
	}, "the drain did not begin")
	close(gate) // the held handlers publish to Kafka during the drain
	select {
	case err := <-ran:
		must(t, err)
	case <-time.After(time.Minute):
		t.Fatal("Run did not return")
	}
	close(first.pubErrs)
	for err := range first.pubErrs {
		t.Errorf("publish failed during the drain: %v", err)
	}
	if got := first.published.Load(); got != pass+concurrency {
		t.Fatalf("the first run shipped %d orders, want the %d it began", got, pass+concurrency)
	}

	second := newShipper(t, srv, cluster, 0, nil, n)
	runCtx, stop = context.WithCancel(ctx)
	ran = make(chan error, 1)
	go func() { ran <- second.app.Run(runCtx) }()
	missing := shippedAll(t, cluster, n)
	stop()
	must(t, <-ran)
	if len(missing) > 0 {
		t.Fatalf("%d orders never shipped, such as %v", len(missing), missing[:min(5, len(missing))])
	}
}

// shippedAll reads the shipments topic until every order 0..n-1 is in it,
// or for 60s, and returns the orders still missing.
func shippedAll(t *testing.T, cluster *kafkatest.Cluster, n int) []string {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   cluster.Addrs(),
		Topic:     "shipments",
		Partition: 0,
		MaxWait:   100 * time.Millisecond,
	})
	defer r.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	seen := make(map[string]bool, n)
	for len(seen) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			break
		}
		var s shipment
		must(t, codec.JSON.Unmarshal(m.Value, &s))
		seen[s.Order] = true
	}
	var missing []string
	for i := range n {
		if id := strconv.Itoa(i); !seen[id] {
			missing = append(missing, id)
		}
	}
	return missing
}
