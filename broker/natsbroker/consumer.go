package natsbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tracebus/tracebus/broker/driver"
)

// jsConsumer is the JetStream consumer behind one subscription: how to
// create or bind it, and the current handle. When the consumer disappears
// (deleted by an operator, an ephemeral consumer expired while the client
// was away), reopen creates it again, unless it was bound.
type jsConsumer struct {
	t      *Transport
	stream string
	bind   string                   // existing consumer to bind; no creation
	cfg    jetstream.ConsumerConfig // what the transport creates
	// ephemeral consumers are deleted when the subscription closes.
	ephemeral bool
	// pos is where a consumer created again resumes.
	pos *position
	// deleted is called when the server announces that the current
	// consumer was deleted.
	deleted func()
	// spec is the subscription's: its Events hear of messages the server
	// stopped redelivering.
	spec *driver.SubscriptionSpec

	mu         sync.Mutex
	cons       jetstream.Consumer
	advisory   *natsgo.Subscription // the deleted advisory
	maxDeliver *natsgo.Subscription // the max-deliveries advisory
}

// deletedAdvisory is the subject on which the server announces that a
// consumer was deleted.
const deletedAdvisory = "$JS.EVENT.ADVISORY.CONSUMER.DELETED."

// maxDeliveriesAdvisory is the subject on which the server announces that
// a message reached the consumer's MaxDeliver and will not be delivered
// again.
const maxDeliveriesAdvisory = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES."

// The reasons the transport gives SubscriptionEvents.Dropped.
const (
	dropSlowConsumer  = "slow_consumer"
	dropMaxDeliveries = "max_deliveries"
)

// newJSConsumer resolves the stream of spec and the consumer configuration
// without touching the consumer yet.
func (t *Transport) newJSConsumer(ctx context.Context, spec *driver.SubscriptionSpec, sc *subConfig) (*jsConsumer, error) {
	if err := t.ensureStreams(ctx); err != nil {
		return nil, err
	}
	stream := sc.stream
	for i := range t.cfg.streams {
		if stream != "" {
			break
		}
		if streamCovers(&t.cfg.streams[i], spec.Destination) {
			stream = t.cfg.streams[i].Name
		}
	}
	if stream == "" {
		name, err := t.js.StreamNameBySubject(ctx, spec.Destination)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("%w: %s: %w", ErrNoStream, spec.Destination, err)
		}
		if err != nil {
			return nil, fmt.Errorf("natsbroker: find stream for %s: %w", spec.Destination, err)
		}
		stream = name
	}
	c := &jsConsumer{t: t, stream: stream, bind: sc.bind, pos: newPosition(), spec: spec}
	if c.bind != "" {
		return c, nil
	}
	durable := spec.Name
	if durable == "" && spec.Group != "" {
		durable = groupDurable(spec.Group, spec.Destination)
	}
	c.cfg = jetstream.ConsumerConfig{
		Durable:       durable,
		FilterSubject: spec.Destination,
		AckPolicy:     jetstream.AckExplicitPolicy,
		// The broker decides when to stop retrying (MaxAttempts) and
		// terminates the message then; the server gives up a few
		// deliveries later, so that a crash loop (or a dead-letter
		// destination that stays down) cannot redeliver forever.
		MaxDeliver:    maxDeliver(spec.MaxAttempts),
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if durable == "" {
		// Like a core subscription, an anonymous one starts with what is
		// published from now on rather than replaying the stream.
		c.cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	for _, f := range sc.configure {
		f(&c.cfg)
	}
	c.ephemeral = c.cfg.Durable == ""
	return c, nil
}

// maxDeliverMargin is how many deliveries beyond MaxAttempts the server
// makes: deliveries that do not reach the broker's decision (messages
// handed back when a subscription closes, handlers given up after the
// maximum handling time, handlers cut by a crash) count on the server too.
const maxDeliverMargin = 5

// maxDeliver is the consumer's MaxDeliver for a subscription whose
// messages get attempts deliveries (0: the broker's default).
func maxDeliver(attempts int) int {
	if attempts <= 0 {
		attempts = 3 // the broker's default MaxAttempts
	}
	return attempts + maxDeliverMargin
}

// groupDurable names the durable consumer shared by the members of a group
// that gave no Name: the group and the destination, so that one group
// consuming several subjects of a stream gets one consumer per subject.
// Characters consumer names cannot hold are replaced: '.' by '_', and the
// wildcards '*' and '>' by '+' and '#' (their MQTT counterparts).
func groupDurable(group, destination string) string {
	var b strings.Builder
	b.Grow(len(group) + 1 + len(destination))
	write := func(s string) {
		for _, r := range s {
			switch {
			case r == '*':
				b.WriteByte('+')
			case r == '>':
				b.WriteByte('#')
			case r <= ' ' || r == 0x7f || r == '.' || r == '/' || r == '\\':
				b.WriteByte('_')
			default:
				b.WriteRune(r)
			}
		}
	}
	write(group)
	b.WriteByte('_')
	write(destination)
	return b.String()
}

// open creates (or updates) the consumer, or binds to it.
func (c *jsConsumer) open(ctx context.Context) (jetstream.Consumer, error) {
	var (
		cons jetstream.Consumer
		err  error
	)
	switch {
	case c.bind != "":
		cons, err = c.t.js.Consumer(ctx, c.stream, c.bind)
	case c.ephemeral:
		cons, err = c.t.js.CreateConsumer(ctx, c.stream, c.cfg)
	default:
		cons, err = c.t.js.CreateOrUpdateConsumer(ctx, c.stream, c.cfg)
	}
	return c.use(cons, err)
}

// reopen binds to the consumer again if the server still has it, and
// otherwise creates it again starting where the subscription got to (see
// position), rather than where the configuration says a new consumer
// starts. A consumer given to BindConsumer is only bound again.
func (c *jsConsumer) reopen(ctx context.Context) (jetstream.Consumer, error) {
	if c.bind != "" {
		return c.open(ctx)
	}
	if old := c.current(); old != nil {
		if info := old.CachedInfo(); info != nil {
			cons, err := c.t.js.Consumer(ctx, c.stream, info.Name)
			if err == nil {
				return c.use(cons, nil)
			}
			if !errors.Is(err, jetstream.ErrConsumerNotFound) {
				return c.use(nil, err)
			}
		}
	}
	cfg := c.cfg
	if seq, ok := c.pos.resume(); ok {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = seq
		cfg.OptStartTime = nil
	}
	cons, err := c.t.js.CreateConsumer(ctx, c.stream, cfg)
	if errors.Is(err, jetstream.ErrConsumerExists) && !c.ephemeral {
		// Another member of the group created it first; its position
		// holds (see the package documentation).
		cons, err = c.t.js.Consumer(ctx, c.stream, cfg.Durable)
	}
	return c.use(cons, err)
}

// use makes cons the current consumer, or wraps err.
func (c *jsConsumer) use(cons jetstream.Consumer, err error) (jetstream.Consumer, error) {
	if err != nil {
		name := c.bind
		if name == "" {
			name = c.cfg.Durable
		}
		return nil, fmt.Errorf("natsbroker: consumer %q of stream %s: %w", name, c.stream, err)
	}
	c.pos.opened(cons.CachedInfo())
	c.mu.Lock()
	c.cons = cons
	c.mu.Unlock()
	c.listen()
	return cons, nil
}

// listen subscribes to the advisories of the current consumer:
//
//   - its deletion, so that it is noticed at once and whatever the handlers
//     are doing (nats.go reports it on the goroutine that delivers
//     messages). This advisory is a shortcut: where the account may not
//     subscribe to it, the subscriptions notice the deletion by checking
//     the consumer;
//   - a message that reached the consumer's MaxDeliver, which the server
//     will not deliver again: without it, such a message (its handlers
//     crashed or hung every time, so the broker never settled it) would
//     stay in the stream unacknowledged without a word. It is logged and
//     reported to the subscription's Events as dropped ("max_deliveries").
func (c *jsConsumer) listen() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unsubscribeLocked()
	info := c.cons.CachedInfo()
	if info == nil {
		return
	}
	if deleted := c.deleted; deleted != nil {
		adv, err := c.t.nc.Subscribe(deletedAdvisory+c.stream+"."+info.Name, func(*natsgo.Msg) { deleted() })
		if err != nil {
			c.t.cfg.logger.Debug("natsbroker: cannot listen for the deletion of a consumer",
				"stream", c.stream, "consumer", info.Name, "error", err)
		}
		c.advisory = adv
	}
	consumer := info.Name
	adv, err := c.t.nc.Subscribe(maxDeliveriesAdvisory+c.stream+"."+consumer, func(m *natsgo.Msg) { c.maxDeliveries(consumer, m.Data) })
	if err != nil {
		c.t.cfg.logger.Debug("natsbroker: cannot listen for messages past a consumer's MaxDeliver",
			"stream", c.stream, "consumer", consumer, "error", err)
	}
	c.maxDeliver = adv
}

// maxDeliveryAdvisory is what the server says of a message that reached
// its consumer's MaxDeliver (io.nats.jetstream.advisory.v1.max_deliver).
type maxDeliveryAdvisory struct {
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// maxDeliveries logs and reports one message the server stopped
// redelivering. data is the advisory; one that does not parse still
// reports the message.
func (c *jsConsumer) maxDeliveries(consumer string, data []byte) {
	var adv maxDeliveryAdvisory
	_ = json.Unmarshal(data, &adv)
	subject := ""
	if c.spec != nil {
		subject = c.spec.Destination
	}
	c.t.cfg.logger.Warn("natsbroker: the server stopped redelivering a message that reached the consumer's MaxDeliver; "+
		"it stays in the stream unacknowledged and no handler settled it",
		"subject", subject, "stream", c.stream, "consumer", consumer,
		"stream_seq", adv.StreamSeq, "deliveries", adv.Deliveries)
	if c.spec != nil && c.spec.Events != nil {
		c.spec.Events.Dropped(context.Background(), 1, dropMaxDeliveries)
	}
}

// stopListening ends listen's subscriptions.
func (c *jsConsumer) stopListening() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unsubscribeLocked()
}

func (c *jsConsumer) unsubscribeLocked() {
	for _, s := range []**natsgo.Subscription{&c.advisory, &c.maxDeliver} {
		if *s != nil {
			_ = (*s).Unsubscribe()
			*s = nil
		}
	}
}

func (c *jsConsumer) current() jetstream.Consumer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cons
}

// gone reports whether the server no longer knows the consumer (or its
// stream). Other errors, such as a connection still recovering, say
// nothing about the consumer and report false.
func (c *jsConsumer) gone(ctx context.Context) bool {
	_, err := c.current().Info(ctx)
	return errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound)
}

// ackWait is the consumer's acknowledgement deadline, as the server
// reported it.
func (c *jsConsumer) ackWait() time.Duration {
	if info := c.current().CachedInfo(); info != nil && info.Config.AckWait > 0 {
		return info.Config.AckWait
	}
	return 30 * time.Second // the server's default
}

// remove deletes an ephemeral consumer when its subscription closes, rather
// than leaving it to expire on the server.
func (c *jsConsumer) remove(ctx context.Context) error {
	if !c.ephemeral {
		return nil
	}
	info := c.current().CachedInfo()
	if info == nil {
		return nil
	}
	err := c.t.js.DeleteConsumer(ctx, c.stream, info.Name)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("natsbroker: delete consumer %s of stream %s: %w", info.Name, c.stream, err)
	}
	return nil
}
