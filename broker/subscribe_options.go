package broker

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"github.com/tracebus/tracebus/broker/codec"
	"github.com/tracebus/tracebus/broker/driver"
)

// SubscribeOption configures one subscription. A nil SubscribeOption is
// ignored. Every SubscribeOption is also a ResultOption.
type SubscribeOption interface {
	ResultOption
	applySubscribe(*subConfig)
}

// ResultOption configures a HandleResult subscription: any SubscribeOption,
// and PublishTo and ExposeErrors, which only HandleResult takes.
type ResultOption interface {
	applyResult(*resultConfig)
}

type subConfig struct {
	spec        driver.SubscriptionSpec
	middleware  []driver.Middleware
	maxAttempts int
	backoff     Backoff
	deadLetter  string
	batchOpt    bool // a batch option was given
	doc         endpointDoc
	ackMode     ackMode
	codec       codec.Codec     // typed subscriptions; the broker's when not set
	endpoint    driver.Endpoint // payload facts of typed subscriptions
	template    *destTemplate   // the destination's parameters; spec.Destination is its pattern
	filter      func(*Message) bool
	pull        bool // a Puller's: the transport's Pull, not Subscribe
	err         error
}

// Defaults of every subscription.
const (
	// defaultMaxAttempts is how many times a failing message is delivered
	// before it is dead-lettered or dropped.
	defaultMaxAttempts = 3
	// defaultBatchSize and defaultBatchWait shape batch subscriptions.
	defaultBatchSize = 100
	defaultBatchWait = 200 * time.Millisecond
)

// defaultBackoff waits 100ms before the second delivery, doubling up to 10s.
var defaultBackoff = ExponentialBackoff(100*time.Millisecond, 10*time.Second)

func newSubConfig(dest string, batch bool, opts []SubscribeOption) subConfig {
	c := subConfig{
		spec: driver.SubscriptionSpec{
			Destination: dest,
			Batch:       batch,
			Concurrency: 1,
		},
		maxAttempts: defaultMaxAttempts,
		backoff:     defaultBackoff,
	}
	if batch {
		c.spec.BatchSize = defaultBatchSize
		c.spec.BatchWait = defaultBatchWait
	}
	for _, o := range opts {
		if o != nil {
			o.applySubscribe(&c)
		}
	}
	return c
}

type subOptionFunc func(*subConfig)

func (f subOptionFunc) applySubscribe(c *subConfig) { f(c) }

func (f subOptionFunc) applyResult(c *resultConfig) { c.sub = append(c.sub, f) }

func (c *subConfig) invalid(format string, args ...any) {
	if c.err == nil {
		c.err = optionError(format, args...)
	}
}

// Group makes the subscription a member of a consumer group (Kafka) or queue
// group (NATS): each message goes to one member of the group.
func Group(name string) SubscribeOption {
	return subOptionFunc(func(c *subConfig) { c.spec.Group = name })
}

// Name names a durable subscription (a JetStream durable consumer), which
// keeps its position across restarts. Transports without durable
// subscriptions (memory, core NATS, Kafka, whose group is the identity)
// ignore it.
func Name(name string) SubscribeOption {
	return subOptionFunc(func(c *subConfig) { c.spec.Name = name })
}

// Concurrency lets up to n deliveries of the subscription run at once. The
// default is 1, which keeps the order the transport delivers in.
func Concurrency(n int) SubscribeOption {
	return subOptionFunc(func(c *subConfig) {
		if n < 1 {
			c.invalid("concurrency %d: must be at least 1", n)
			return
		}
		c.spec.Concurrency = n
	})
}

// Batch shapes the deliveries of a batch subscription: up to size
// messages each, delivered within wait of the first one even when fewer
// have come. A size or wait of 0 keeps its default: 100 messages, 200ms.
// Only for batch subscriptions (SubscribeBatch, HandleBatch); elsewhere,
// and with a negative value, the subscription fails with ErrInvalid.
func Batch(size int, wait time.Duration) SubscribeOption {
	return subOptionFunc(func(c *subConfig) {
		c.batchOpt = true
		if size < 0 || wait < 0 {
			c.invalid("batch of %d messages within %v: must not be negative", size, wait)
			return
		}
		if size > 0 {
			c.spec.BatchSize = size
		}
		if wait > 0 {
			c.spec.BatchWait = wait
		}
	})
}

// MaxAttempts is how many deliveries a failing message gets before it is
// dead-lettered or dropped; 1 disables retries. The default is
// 3.
func MaxAttempts(n int) SubscribeOption {
	return subOptionFunc(func(c *subConfig) {
		if n < 1 {
			c.invalid("max attempts %d: must be at least 1", n)
			return
		}
		c.maxAttempts = n
	})
}

// RetryBackoff sets the wait before each redelivery of a failed message. The
// default waits 100ms before the second delivery, doubling up to 10s.
func RetryBackoff(b Backoff) SubscribeOption {
	return subOptionFunc(func(c *subConfig) {
		if b == nil {
			c.invalid("nil backoff")
			return
		}
		c.backoff = b
	})
}

// DeadLetter sends a message that failed its last attempt (or failed with
// ErrPermanent) to destination, with the headers described at
// HeaderDeadLetterError, and then acknowledges it. Without DeadLetter such
// a message is dropped: logged at error level and terminated.
//
// The destination is used as given, also under a Router, and must lie
// outside the subscription's own pattern: subscribing to "orders.*" with
// DeadLetter("orders.rejected") fails with ErrInvalid, since every
// dead letter would come back to the handler that rejected it. Use a
// destination of its own, such as "dlq.orders".
func DeadLetter(destination string) SubscribeOption {
	return subOptionFunc(func(c *subConfig) {
		if destination == "" {
			c.invalid("dead letter: %w", errEmptyDestination)
			return
		}
		c.deadLetter = destination
	})
}

// Use adds middleware around this subscription's consume only, inside the
// broker's middleware. The first given is the outermost.
func Use(mws ...driver.Middleware) SubscribeOption {
	return subOptionFunc(func(c *subConfig) { c.middleware = append(c.middleware, mws...) })
}

type ackMode uint8

const (
	ackAfter  ackMode = iota // settle from the handler's result
	ackFirst                 // acknowledge before the handler runs
	ackManual                // the handler settles through its Settler
)

// AckFirst acknowledges each delivery before its handler runs, as
// FastStream's ACK_FIRST does: at most once. A handler that fails is
// logged and traced, but its message is not delivered again and not
// dead-lettered. The default acknowledges after the handler returns nil.
func AckFirst() SubscribeOption {
	return subOptionFunc(func(c *subConfig) { c.ackMode = ackFirst })
}

// ManualAck leaves acknowledgement to the handler, which settles through
// SettlerFromContext(ctx): Ack, Nak with a delay, Term, InProgress. A
// handler that returns nil without settling has not acknowledged its
// message, so it is delivered again after the backoff, as a server would
// redeliver it after its ack wait; an error applies the usual retry policy.
func ManualAck() SubscribeOption {
	return subOptionFunc(func(c *subConfig) { c.ackMode = ackManual })
}

// TransportOption passes a transport-specific option to the transport.
// Subscribe fails with errors.ErrUnsupported, naming the option, when it is
// meant for another transport, and with the transport's own error when the
// transport rejects it (see driver.Transport.ValidateSubscription).
func TransportOption(opt driver.TransportOption) SubscribeOption {
	return subOptionFunc(func(c *subConfig) {
		if opt == nil {
			c.invalid("nil transport option")
			return
		}
		c.spec.TransportOptions = append(c.spec.TransportOptions, opt)
	})
}

// optionName names a transport option in errors: its String when it has
// one, else its type.
func optionName(o driver.TransportOption) string {
	if s, ok := o.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", o)
}

// Backoff returns how long to wait before delivery attempt+1, given the
// attempt (1-based) that just failed.
type Backoff func(attempt int) time.Duration

// ExponentialBackoff waits initial after the first failure and doubles the
// wait with every further failure, never beyond max.
func ExponentialBackoff(initial, max time.Duration) Backoff {
	return func(attempt int) time.Duration {
		d := initial
		for i := 1; i < attempt && d < max; i++ {
			d *= 2
		}
		return min(d, max)
	}
}

// ConstantBackoff always waits d.
func ConstantBackoff(d time.Duration) Backoff {
	return func(int) time.Duration { return d }
}

// resultConfig is what HandleResult's options set: the subscribe options,
// in order, and the two of its own.
type resultConfig struct {
	sub       []SubscribeOption
	publishTo []ResultPublisher
	expose    bool
	err       error
}

type resultOptionFunc func(*resultConfig)

func (f resultOptionFunc) applyResult(c *resultConfig) { f(c) }

// ResultPublisher is a publisher a HandleResult handler's results go to:
// a *Publisher[T] whose T the handler's result type is assignable to.
type ResultPublisher interface {
	owner() *Broker
	destination() string
	payloadType() reflect.Type
	publishValue(ctx context.Context, v any) error
}
