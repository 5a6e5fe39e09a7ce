package asyncapi_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/asyncapi"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// TestBuildTransports builds the document of an application over a NATS
// broker (on an embedded nats-server) and a Kafka broker (never started: a
// Kafka transport connects on first use, and describing it needs no
// connection). Servers come from the transports, the bindings from the
// groups, client id and key function.
func TestBuildTransports(t *testing.T) {
	ctx := context.Background()
	ns := natstest.New(t)
	nt, err := natsbroker.New(ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	nb := broker.New(nt)
	t.Cleanup(func() { _ = nb.Close(ctx) })
	kt, err := kafkabroker.New(kafkabroker.WithSeedBrokers("kafka-1.internal:9092"), kafkabroker.WithClientID("billing-1"))
	must(t, err)
	kb := broker.New(kt)
	t.Cleanup(func() { _ = kb.Close(ctx) })

	shipments := broker.Must(broker.NewPublisher[Shipment](kb, "shipments", broker.KeyFunc(func(s Shipment) string { return s.OrderID })))
	must(t, broker.HandleResult(nb, "orders.*.created", func(_ context.Context, o Order) (Shipment, error) {
		return Shipment{OrderID: o.ID}, nil
	}, broker.Group("billing"), broker.PublishTo(shipments)))
	must(t, broker.Handle(kb, "shipments", func(context.Context, Shipment) error { return nil }, broker.Group("tracking")))

	doc, err := asyncapi.New().Build(nb, kb)
	if err != nil {
		t.Fatal(err)
	}
	validate(t, doc)
	checkRefs(t, doc)

	info := nb.Transport().Info()
	natsHost := net.JoinHostPort(info.ServerAddress, strconv.Itoa(info.ServerPort))
	if s := doc.Servers["nats"]; s == nil || s.Protocol != "nats" || s.Host != natsHost || info.ServerPort == 0 {
		t.Errorf("nats server %+v, want host %s", s, natsHost)
	}
	if s := doc.Servers["kafka"]; s == nil || s.Protocol != "kafka" || s.Host != "kafka-1.internal:9092" {
		t.Errorf("kafka server %+v", s)
	}

	if b := operation(t, doc, "receive_orders_any_created_billing").Bindings; b == nil || b.NATS == nil || b.NATS.Queue != "billing" {
		t.Errorf("NATS queue binding %+v", b)
	}
	recv := operation(t, doc, "receive_shipments_tracking")
	if recv.Bindings == nil || recv.Bindings.Kafka == nil {
		t.Fatalf("no Kafka binding on %+v", recv)
	}
	jsonEq(t, "groupId", recv.Bindings.Kafka.GroupID, `{"type":"string","enum":["tracking"]}`)
	jsonEq(t, "clientId", recv.Bindings.Kafka.ClientID, `{"type":"string","enum":["billing-1"]}`)

	m := channel(t, doc, "shipments").Messages["Shipment"]
	if m == nil || m.Bindings == nil || m.Bindings.Kafka == nil {
		t.Fatalf("the keyed Shipment message has no Kafka key binding: %+v", m)
	}
	jsonEq(t, "key", m.Bindings.Kafka.Key, `{"type":"string"}`)
	if ops := operation(t, doc, "send_shipments"); ops.Messages[0].Ref != "#/channels/shipments/messages/Shipment" {
		t.Errorf("send_shipments messages %v", ops.Messages)
	}
}

// A Kafka pattern subscription (kafkabroker.Pattern) is one channel whose
// address is a topic parameter described by the regular expression, braces
// and all: the broker does not read them as template parameters.
func TestBuildKafkaPattern(t *testing.T) {
	ctx := context.Background()
	kt, err := kafkabroker.New(kafkabroker.WithSeedBrokers("kafka-1.internal:9092"))
	must(t, err)
	kb := broker.New(kt)
	t.Cleanup(func() { _ = kb.Close(ctx) })
	const expr = `orders-[a-z]{2}`
	must(t, broker.Handle(kb, expr, func(context.Context, Shipment) error { return nil }, broker.Group("audit"), kafkabroker.Pattern()))

	doc, err := asyncapi.New().Build(kb)
	if err != nil {
		t.Fatal(err)
	}
	validate(t, doc)
	checkRefs(t, doc)
	if len(doc.Channels) != 1 {
		t.Fatalf("channels %v", keys(doc.Channels))
	}
	for id, c := range doc.Channels {
		if c.Address == nil || *c.Address != "{topic}" {
			t.Fatalf("channel %s: address %v, want {topic}", id, c.Address)
		}
		p := c.Parameters["topic"]
		if p == nil || !strings.Contains(p.Description, strconv.Quote(expr)) || !strings.Contains(c.Description, strconv.Quote(expr)) {
			t.Fatalf("channel %s: parameters %+v, description %q: want the expression %q", id, c.Parameters, c.Description, expr)
		}
	}
}
