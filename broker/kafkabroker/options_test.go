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
	tr, err := kafkabroker.New(kafkabroker.WithBrokers("kafka-1.internal:9093", "kafka-2.internal"), kafkabroker.WithClientID("billing"))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close(context.Background())
	want := driver.Info{System: "kafka", ServerAddress: "kafka-1.internal", ServerPort: 9093, ClientID: "billing", AckOperation: "commit"}
	if got := tr.Info(); got != want {
		t.Fatalf("Info() = %+v, want %+v", got, want)
	}

	def, err := kafkabroker.New()
	if err != nil {
		t.Fatal(err)
	}
	defer def.Close(context.Background())
	if got := def.Info(); got.ServerAddress != "localhost" || got.ServerPort != 9092 || got.ClientID != kafkabroker.DefaultClientID {
		t.Fatalf("default Info() = %+v", got)
	}
	if w := def.Writer(); w.BatchTimeout > time.Millisecond || w.RequiredAcks != kafka.RequireAll {
		t.Fatalf("default writer lingers %v with acks %v", w.BatchTimeout, w.RequiredAcks)
	}
}

func TestInvalidOptions(t *testing.T) {
	for name, opt := range map[string]kafkabroker.Option{
		"no brokers":         kafkabroker.WithBrokers(),
		"empty broker":       kafkabroker.WithBrokers(""),
		"batch size":         kafkabroker.WithWriteBatchSize(0),
		"batch bytes":        kafkabroker.WithWriteBatchBytes(-1),
		"batch timeout":      kafkabroker.WithWriteBatchTimeout(-time.Second),
		"required acks":      kafkabroker.WithRequiredAcks(kafka.RequiredAcks(2)),
		"max wait":           kafkabroker.WithMaxWait(0),
		"start offset":       kafkabroker.WithStartOffset(5),
		"commit interval":    kafkabroker.WithCommitInterval(-1),
		"heartbeat":          kafkabroker.WithHeartbeatInterval(0),
		"session timeout":    kafkabroker.WithSessionTimeout(0),
		"auto-create":        kafkabroker.WithAutoCreateTopics(0, 1),
		"write attempts":     kafkabroker.WithWriteAttempts(0),
		"queue capacity":     kafkabroker.WithQueueCapacity(0),
		"rebalance timeout":  kafkabroker.WithRebalanceTimeout(-1),
		"partition watching": kafkabroker.WithPartitionWatchInterval(0),
		"metadata max age":   kafkabroker.WithMetadataMaxAge(0),
	} {
		if _, err := kafkabroker.New(opt); !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalidOption", name, err)
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
		tr := newTransport(t, c, kafkabroker.WithSASL(plain.Mechanism{Username: "plain-user", Password: "wrong"}), kafkabroker.WithWriteAttempts(1))
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

// WithMinBytes alone leaves MaxBytes at kafka-go's default: the readers
// must work, not panic on kafka-go's check of MinBytes against an unset
// MaxBytes. Reader settings that kafka-go would reject fail Subscribe (or
// New) with ErrInvalidOption instead of panicking in a reader goroutine.
func TestMinBytesWithoutMaxBytes(t *testing.T) {
	c := kafkatest.New(t)
	topic := newTopic(t, c, 1)
	tr := newTransport(t, c, kafkabroker.WithMinBytes(1024))
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

	if _, err := kafkabroker.New(kafkabroker.WithMinBytes(2e6)); !errors.Is(err, broker.ErrInvalid) {
		t.Errorf("min bytes above the default max bytes: %v, want ErrInvalidOption", err)
	}
	bad := newTransport(t, c, kafkabroker.WithReaderConfig(func(rc *kafka.ReaderConfig) { rc.MinBytes, rc.MaxBytes = 10, 5 }))
	for _, group := range []string{"", "bad-reader"} {
		_, err := bad.Subscribe(context.Background(), driver.SubscriptionSpec{Destination: topic, Group: group, Concurrency: 1},
			func(context.Context, []*broker.Message, driver.Acknowledger) {})
		if !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("group %q: subscribe with an invalid reader config: %v, want ErrInvalidOption", group, err)
		}
	}
}
