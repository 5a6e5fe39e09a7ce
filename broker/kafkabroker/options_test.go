package kafkabroker_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/testutil/kafkatest"
)

func TestInfo(t *testing.T) {
	tr, err := kafkabroker.New(kafkabroker.WithSeedBrokers("kafka-1.internal:9093", "kafka-2.internal"), kafkabroker.WithClientID("billing"))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close(context.Background())
	want := driver.Info{System: "kafka", ServerAddress: "kafka-1.internal", ServerPort: 9093, ClientID: "billing", AckOperation: "commit", ReceiveOperation: "poll"}
	if got := tr.Info(); got != want {
		t.Fatalf("Info() = %+v, want %+v", got, want)
	}

	def, err := kafkabroker.New()
	if err != nil {
		t.Fatal(err)
	}
	defer def.Close(context.Background())
	if got := def.Info(); got.ServerAddress != "localhost" || got.ServerPort != 9092 || got.ClientID != "tracebus" {
		t.Fatalf("default Info() = %+v", got)
	}
	if w := def.Writer(); w.BatchTimeout > time.Millisecond || w.RequiredAcks != kafka.RequireAll {
		t.Fatalf("default writer lingers %v with acks %v", w.BatchTimeout, w.RequiredAcks)
	}
}

func TestInvalidOptions(t *testing.T) {
	for name, opt := range map[string]kafkabroker.Option{
		"no brokers":       kafkabroker.WithSeedBrokers(),
		"empty broker":     kafkabroker.WithSeedBrokers(""),
		"required acks":    kafkabroker.WithWriterConfig(func(w *kafka.Writer) { w.RequiredAcks = 2 }),
		"auto-create":      kafkabroker.WithAutoCreateTopics(0, 1),
		"metadata max age": kafkabroker.WithMetadataMaxAge(0),
		"dial timeout":     kafkabroker.WithDialTimeout(0),
	} {
		if _, err := kafkabroker.New(opt); !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

// SASL PLAIN and SCRAM reach the writer and the group readers alike; a
// wrong password fails instead of hanging.
func TestSASL(t *testing.T) {
	c := kafkatest.New(t, kafkatest.WithKfakeOptions(
		kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "plain-user", "plain-pass"),
		kfake.Superuser("SCRAM-SHA-256", "scram-user", "scram-pass"),
		kfake.Superuser("SCRAM-SHA-512", "scram512-user", "scram512-pass"),
	))
	if c.External() {
		t.Skip("needs the in-process cluster's users")
	}
	mustScram := func(algo scram.Algorithm, user, pass string) sasl.Mechanism {
		m, err := scram.Mechanism(algo, user, pass)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	for name, mech := range map[string]sasl.Mechanism{
		"plain":         plain.Mechanism{Username: "plain-user", Password: "plain-pass"},
		"scram-sha-256": mustScram(scram.SHA256, "scram-user", "scram-pass"),
		"scram-sha-512": mustScram(scram.SHA512, "scram512-user", "scram512-pass"),
	} {
		t.Run(name, func(t *testing.T) {
			topic := "kb-sasl-" + name
			b := newBroker(t, c, kafkabroker.WithSASL(mech), kafkabroker.WithAutoCreateTopics(1, 1))
			got := make(chan string, 1)
			if err := b.Subscribe(topic, func(_ context.Context, m *broker.Message) error {
				got <- string(m.Body)
				return nil
			}, broker.Group("sasl")); err != nil {
				t.Fatal(err)
			}
			start(t, b)
			if err := b.Publish(context.Background(), &broker.Message{Destination: topic, Body: []byte(name)}); err != nil {
				t.Fatal(err)
			}
			if v := recv(t, got); v != name {
				t.Fatalf("got %q", v)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		tr := newTransport(t, c, kafkabroker.WithSASL(plain.Mechanism{Username: "plain-user", Password: "wrong"}),
			kafkabroker.WithWriterConfig(func(w *kafka.Writer) { w.MaxAttempts = 1 }))
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := tr.Publish(ctx, []*broker.Message{{Destination: "kb-sasl-plain", Body: []byte("x")}}); err == nil || ctx.Err() != nil {
			t.Fatalf("publish with a wrong password: %v (ctx %v), want an authentication error", err, ctx.Err())
		}
	})
}

// TLS reaches the writer and the group readers alike.
func TestTLS(t *testing.T) {
	serverCfg, clientCfg := selfSignedTLS(t)
	c := kafkatest.New(t, kafkatest.WithKfakeOptions(kfake.TLS(serverCfg)))
	if c.External() {
		t.Skip("needs the in-process cluster's certificate")
	}
	topic := "kb-tls"
	b := newBroker(t, c, kafkabroker.WithTLS(clientCfg), kafkabroker.WithAutoCreateTopics(2, 1))
	got := make(chan string, 1)
	if err := b.Subscribe(topic, func(_ context.Context, m *broker.Message) error {
		got <- string(m.Body)
		return nil
	}, broker.Group("tls")); err != nil {
		t.Fatal(err)
	}
	start(t, b)
	if err := b.Publish(context.Background(), &broker.Message{Destination: topic, Body: []byte("encrypted")}); err != nil {
		t.Fatal(err)
	}
	if v := recv(t, got); v != "encrypted" {
		t.Fatalf("got %q", v)
	}
}

// selfSignedTLS returns a server configuration with a certificate for
// 127.0.0.1 and a client configuration that trusts it.
func selfSignedTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "kfake"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true,

		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
	client = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return server, client
}

// MinBytes alone leaves MaxBytes at kafka-go's default: the readers must
// work, not panic on kafka-go's check of MinBytes against an unset
// MaxBytes. Reader and group settings that kafka-go would reject fail
// Subscribe with ErrInvalid instead of panicking in a reader
// goroutine, and so does broker.Broker.Subscribe, before the broker starts.
func TestMinBytesWithoutMaxBytes(t *testing.T) {
	c := kafkatest.New(t)
	topic := newTopic(t, c, 1)
	tr := newTransport(t, c, kafkabroker.WithReaderConfig(func(rc *kafka.ReaderConfig) { rc.MinBytes = 1024 }))
	got := make(chan string, 1)
	sub, err := tr.Subscribe(context.Background(), driver.SubscriptionSpec{Destination: topic, Concurrency: 1},
		func(ctx context.Context, msgs []*broker.Message, ack driver.Acknowledger) {
			got <- string(msgs[0].Body)
			_ = ack.Ack(ctx)
		})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(context.Background())
	if err := tr.Publish(context.Background(), []*broker.Message{{Destination: topic, Body: []byte("small")}}); err != nil {
		t.Fatal(err)
	}
	if body := recv(t, got); body != "small" {
		t.Fatalf("got %q", body)
	}

	for name, opt := range map[string]kafkabroker.Option{
		"min above max":         kafkabroker.WithReaderConfig(func(rc *kafka.ReaderConfig) { rc.MinBytes, rc.MaxBytes = 10, 5 }),
		"min above default max": kafkabroker.WithReaderConfig(func(rc *kafka.ReaderConfig) { rc.MinBytes = 2e6 }),
		"negative session":      kafkabroker.WithConsumerGroupConfig(func(gc *kafka.ConsumerGroupConfig) { gc.SessionTimeout = -1 }),
		"start offset":          kafkabroker.WithConsumerGroupConfig(func(gc *kafka.ConsumerGroupConfig) { gc.StartOffset = 5 }),
	} {
		bad := newTransport(t, c, opt)
		groups := []string{"", "bad-config"}
		if strings.HasPrefix(name, "negative") || name == "start offset" {
			groups = groups[1:] // a group setting: group-less subscriptions do not use it
		}
		for _, group := range groups {
			_, err := bad.Subscribe(context.Background(), driver.SubscriptionSpec{Destination: topic, Group: group, Concurrency: 1},
				func(context.Context, []*broker.Message, driver.Acknowledger) {})
			if !errors.Is(err, broker.ErrInvalid) {
				t.Errorf("%s, group %q: subscribe: %v, want ErrInvalid", name, group, err)
			}
			var opts []broker.SubscribeOption
			if group != "" {
				opts = append(opts, broker.Group(group))
			}
			err = broker.New(bad).Subscribe(topic, func(context.Context, *broker.Message) error { return nil }, opts...)
			if !errors.Is(err, broker.ErrInvalid) || !strings.Contains(err.Error(), "config") {
				t.Errorf("%s, group %q: broker.Subscribe: %v, want ErrInvalid naming the config", name, group, err)
			}
		}
	}
}

// The hooks reach kafka-go's own configuration: the transport's defaults
// are set before them, and what the transport relies on (addresses, topic,
// the partition a message asks for) after them.
func TestConfigHooks(t *testing.T) {
	var acks kafka.RequiredAcks
	tr, err := kafkabroker.New(kafkabroker.WithWriterConfig(func(w *kafka.Writer) {
		acks = w.RequiredAcks
		w.Addr = kafka.TCP("elsewhere:1")
		w.Topic = "fixed"
		w.Compression = kafka.Zstd
		w.BatchSize = 7
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close(context.Background())
	if acks != kafka.RequireAll {
		t.Errorf("the hook saw acks %v, want the transport's default RequireAll", acks)
	}
	w := tr.Writer()
	if w.Addr.String() != "localhost:9092" || w.Topic != "" || w.Compression != kafka.Zstd || w.BatchSize != 7 {
		t.Errorf("writer after the hook: addr %s topic %q compression %v batch size %d", w.Addr, w.Topic, w.Compression, w.BatchSize)
	}

	// A balancer set by the hook picks the partition of messages that do
	// not ask for one; Message.Partition still wins.
	c := kafkatest.New(t)
	topic := newTopic(t, c, 3)
	b := newBroker(t, c, kafkabroker.WithWriterConfig(func(w *kafka.Writer) { w.Balancer = lastPartition{} }))
	msgs := []*broker.Message{
		{Destination: topic, Key: []byte("a"), Body: []byte("balanced")},
		{Destination: topic, Key: []byte("a"), Body: []byte("asked"), Partition: new(int32(0))},
	}
	if err := b.PublishBatch(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	if p := msgs[0].Delivery.Partition; p != 2 {
		t.Errorf("the hook's balancer was not used: partition %d, want 2", p)
	}
	if p := msgs[1].Delivery.Partition; p != 0 {
		t.Errorf("Message.Partition lost to the hook's balancer: partition %d, want 0", p)
	}
}

// lastPartition is a kafka.Balancer that picks the last partition.
type lastPartition struct{}

func (lastPartition) Balance(_ kafka.Message, partitions ...int) int {
	return partitions[len(partitions)-1]
}
