package kafkabroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
)

// system is the messaging system the transport reports in driver.Info.
const system = "kafka"

// Transport is a driver.Transport over Kafka: one kafka-go Writer for every
// publish, and per subscription a kafka-go ConsumerGroup (or, without a
// group, one reader per partition). Create it with New; it is safe for
// concurrent use.
type Transport struct {
	cfg        config
	info       driver.Info
	kt         *kafka.Transport
	client     *kafka.Client
	dialer     *kafka.Dialer
	writer     *kafka.Writer
	writes     coalescer // concurrent publishes to a topic, written together
	logger     kafkaLogger
	created    sync.Map // topic -> struct{}: topics known to exist (auto-create)
	partitions partitionCache
	// replyTopics are the reply topics PrepareReply made kafka-go's
	// metadata cache learn.
	replyTopics sync.Map // topic -> struct{}

	mu     sync.Mutex // guards subs and the transition of closed
	subs   map[*subscription]struct{}
	pulls  map[*puller]struct{}
	closed atomic.Bool
}

var (
	_ driver.Transport    = (*Transport)(nil)
	_ driver.LoggerSetter = (*Transport)(nil)
)

// New returns a Transport configured by opts. It does not connect: the
// first publish or subscription does. It fails only on invalid options,
// with an error wrapping broker.ErrInvalid.
func New(opts ...Option) (*Transport, error) {
	cfg := newConfig(opts)
	if cfg.err != nil {
		return nil, cfg.err
	}
	host, portText, _ := net.SplitHostPort(cfg.brokers[0])
	port, _ := strconv.Atoi(portText)

	t := &Transport{
		cfg: cfg,
		info: driver.Info{
			System:        system,
			ServerAddress: host,
			ServerPort:    port,
			ClientID:      cfg.clientID,
			AckOperation:  "commit",
			// What the conventions' Kafka examples call a receive.
			ReceiveOperation: "poll",
		},
		subs:       make(map[*subscription]struct{}),
		partitions: partitionCache{ttl: cfg.metadataMaxAge},
	}
	t.logger = kafkaLogger{&t.cfg}
	t.kt = &kafka.Transport{
		ClientID:    cfg.clientID,
		TLS:         cfg.tls,
		SASL:        cfg.sasl,
		MetadataTTL: cfg.metadataMaxAge,
	}
	if cfg.dialTimeout > 0 {
		t.kt.DialTimeout = cfg.dialTimeout
	}
	t.dialer = &kafka.Dialer{
		ClientID:      cfg.clientID,
		Timeout:       10 * time.Second,
		DualStack:     true,
		TLS:           cfg.tls,
		SASLMechanism: cfg.sasl,
	}
	if cfg.dialTimeout > 0 {
		t.dialer.Timeout = cfg.dialTimeout
	}
	t.client = &kafka.Client{Addr: kafka.TCP(cfg.brokers...), Transport: t.kt}
	w, err := t.newWriter()
	if err != nil {
		return nil, err
	}
	t.writer = w
	t.writes.direct, t.writes.writeAll = t.writeDirect, t.writeMessages
	return t, nil
}

// newWriter makes the writer: the transport's defaults, then the
// WithWriterConfig hooks, then what the transport relies on.
func (t *Transport) newWriter() (*kafka.Writer, error) {
	c := &t.cfg
	w := &kafka.Writer{
		RequiredAcks: kafka.RequireAll,
		ErrorLogger:  t.logger,
	}
	for _, fn := range c.writerHooks {
		fn(w)
	}
	switch w.RequiredAcks {
	case kafka.RequireNone, kafka.RequireOne, kafka.RequireAll:
	default:
		return nil, fmt.Errorf("kafkabroker: writer config: required acks %d: %w", w.RequiredAcks, broker.ErrInvalid)
	}
	w.Addr = kafka.TCP(c.brokers...)
	w.Topic = ""
	w.Transport = t.kt
	w.Balancer = newPartitionBalancer(w.Balancer)
	// kafka-go's writer serves partition counts from a metadata cache and
	// asks the broker about a topic missing from it only when the request
	// allows auto-creation, which creates the topic where the broker allows
	// it. So it may only when the user asked for topics to be created
	// (WithAutoCreateTopics); otherwise Publish waits for the cache to learn
	// a new topic (see awaitTopic).
	w.AllowAutoTopicCreation = c.createPartitions != 0
	if w.BatchTimeout == 0 {
		// kafka-go treats 0 as one second. One nanosecond still puts all
		// the messages of one WriteMessages call into one batch: the flush
		// timer cannot take the partition lock while the call holds it.
		w.BatchTimeout = time.Nanosecond
	}
	if user := w.Completion; user != nil {
		w.Completion = func(msgs []kafka.Message, err error) {
			recordStored(msgs, err)
			user(msgs, err)
		}
	} else {
		w.Completion = recordStored
	}
	return w, nil
}

// Info describes the transport: System "kafka", the first seed broker as
// server address and port, the client id, "commit" as the name of a
// successful settlement and "poll" as the name of a receive (Puller).
func (t *Transport) Info() driver.Info { return t.info }

// SetLogger implements driver.LoggerSetter: broker.New gives the transport
// its logger, for errors the transport cannot return to a caller (fetch and
// join failures, failed commits on shutdown; kafka-go's own error log at
// debug level). Without it the transport logs to slog.Default(). It must be
// called before the transport is used.
func (t *Transport) SetLogger(l *slog.Logger) { t.cfg.logger.Offer(l) }

// Writer returns the kafka-go Writer the transport publishes with, for
// inspection (Stats). Writing through it bypasses the broker's middleware.
func (t *Transport) Writer() *kafka.Writer { return t.writer }

// Client returns a kafka-go Client that shares the transport's connections
// and settings, for administrative calls such as CreateTopics or
// OffsetFetch.
func (t *Transport) Client() *kafka.Client { return t.client }

// Close closes every subscription that is still open, abandoning their
// deliveries, then the writer. It does not wait for ctx beyond that: an
// expired ctx still releases everything. Calling Close again returns nil.
func (t *Transport) Close(ctx context.Context) error {
	t.mu.Lock()
	if t.closed.Load() {
		t.mu.Unlock()
		return nil
	}
	t.closed.Store(true)
	subs := make([]*subscription, 0, len(t.subs))
	for s := range t.subs {
		subs = append(subs, s)
	}
	pulls := make([]*puller, 0, len(t.pulls))
	for p := range t.pulls {
		pulls = append(pulls, p)
	}
	t.mu.Unlock()

	var errs []error
	for _, p := range pulls {
		if err := p.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for _, s := range subs {
		if err := s.Close(ctx); err != nil && !errors.Is(err, ctx.Err()) {
			errs = append(errs, err)
		}
	}
	if err := t.writer.Close(); err != nil {
		errs = append(errs, fmt.Errorf("kafkabroker: close writer: %w", err))
	}
	t.kt.CloseIdleConnections()
	return errors.Join(errs...)
}

func (t *Transport) addSub(s *subscription) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() {
		return broker.ErrClosed
	}
	t.subs[s] = struct{}{}
	return nil
}

func (t *Transport) removeSub(s *subscription) {
	t.mu.Lock()
	delete(t.subs, s)
	t.mu.Unlock()
}

func (t *Transport) isClosed() bool { return t.closed.Load() }
