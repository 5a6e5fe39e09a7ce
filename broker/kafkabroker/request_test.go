package kafkabroker_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/testutil/conformance"
	"github.com/tracebus/tracebus/testutil/kafkatest"
)

func TestRequestReply(t *testing.T) {
	c := kafkatest.New(t)
	conformance.TestRequestReply(t, suite(c))
}

func TestRequestWithoutReplyTopic(t *testing.T) {
	c := kafkatest.New(t)
	b := plainBroker(t, c.TransportOptions()...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.Request(ctx, &broker.Message{Destination: "anything"}); !errors.Is(err, broker.ErrInvalid) {
		t.Fatalf("request without a reply topic: %v, want ErrInvalid", err)
	}
}

// Message.ReplyTo survives Kafka in the x-tracebus-reply-to header, also
// for a message published with Publish rather than Request.
func TestReplyToCarriedInHeader(t *testing.T) {
	c := kafkatest.New(t)
	s := suite(c)
	dest := s.Destination(t)
	b := s.Broker(t)
	in := testkit.NewInbox[*broker.Message](s.Wait())
	err := b.Subscribe(dest, func(_ context.Context, m *broker.Message) error {
		in.Put(m.Clone())
		return nil
	}, broker.Group("g"))
	if err != nil {
		t.Fatal(err)
	}
	s.Start(t, b)
	m := &broker.Message{Destination: dest, Body: []byte("x"), ReplyTo: "answers-here"}
	m.Headers.Set(driver.HeaderReplyTo, "stale") // ReplyTo wins
	if err := b.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := in.Next(t)
	if got.ReplyTo != "answers-here" || len(got.Headers.Values(driver.HeaderReplyTo)) != 1 {
		t.Errorf("consumed ReplyTo %q, headers %v; want %q in one header", got.ReplyTo, got.Headers, "answers-here")
	}
}

// A reply address naming no topic is not created by the replier, even on
// brokers that create topics on demand: a hostile request cannot make a
// replier create topics. The reply fails once the metadata max age passed.
func TestReplyCreatesNoTopic(t *testing.T) {
	if os.Getenv(kafkatest.EnvBrokers) != "" {
		t.Skip("needs the in-process cluster")
	}
	c := kafkatest.New(t, kafkatest.WithKfakeOptions(kfake.AllowAutoTopicCreation()))
	b := plainBroker(t, append(c.TransportOptions(), kafkabroker.WithMetadataMaxAge(200*time.Millisecond))...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := &broker.Message{Destination: "requests", ReplyTo: "planted-topic"}
	if err := b.Reply(ctx, req, &broker.Message{Body: []byte("x")}); err == nil {
		t.Fatal("reply to a missing topic succeeded")
	}
	dc, err := c.Client().DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{
		Resources: []kafka.DescribeConfigRequestResource{{ResourceType: kafka.ResourceTypeTopic, ResourceName: "planted-topic"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(dc.Resources) != 1 || dc.Resources[0].Error == nil {
		t.Errorf("the reply created topic planted-topic: %+v", dc.Resources)
	}
}

// plainBroker returns a broker over a transport made with opts, closed when
// the test ends.
func plainBroker(t *testing.T, opts ...kafkabroker.Option) *broker.Broker {
	t.Helper()
	tr, err := kafkabroker.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(tr)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}
