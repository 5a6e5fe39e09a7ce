package natsbroker

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
)

// Subscribe starts a subscription as described by spec; see the package
// documentation for how core NATS and JetStream subscriptions behave. It
// returns once the subscription is registered with the server (core NATS)
// or its consumer exists (JetStream).
func (t *Transport) Subscribe(ctx context.Context, spec driver.SubscriptionSpec, deliver driver.DeliverFunc) (driver.Subscription, error) {
	if err := t.usable(); err != nil {
		return nil, fmt.Errorf("natsbroker: subscribe to %s: transport closed: %w", spec.Destination, err)
	}
	sc, err := t.subscription(&spec)
	if err != nil {
		return nil, err
	}
	spec.Concurrency = max(1, spec.Concurrency)
	if spec.Batch {
		// A broker always sends a complete spec; a caller of the
		// transport alone gets batches of one, delivered at once.
		spec.BatchSize = max(1, spec.BatchSize)
		spec.BatchWait = max(time.Millisecond, spec.BatchWait)
	}
	if sc.watch() {
		s, err := t.subscribeWatch(ctx, spec, deliver, &sc)
		if err != nil {
			return nil, err
		}
		return t.track(ctx, s, spec.Destination)
	}
	if sc.isCore(t, spec.Destination) {
		s, err := t.subscribeCore(ctx, spec, deliver, &sc)
		if err != nil {
			return nil, err
		}
		return t.track(ctx, s, spec.Destination)
	}
	setupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultTimeout)
	defer cancel()
	cons, err := t.newJSConsumer(setupCtx, &spec, &sc)
	if err != nil {
		return nil, err
	}
	var s driver.Subscription
	if spec.Batch {
		s, err = t.subscribeFetch(ctx, setupCtx, spec, deliver, &sc, cons)
	} else {
		s, err = t.subscribeConsume(ctx, setupCtx, spec, deliver, &sc, cons)
	}
	if err != nil {
		return nil, err
	}
	return t.track(ctx, s, spec.Destination)
}

// ValidateSubscription implements driver.Transport: it rejects
// options of other transports and combinations that cannot work (Core with
// JetStream options) when broker.Broker.Subscribe is called.
func (t *Transport) ValidateSubscription(spec driver.SubscriptionSpec) error {
	sc, err := t.subscription(&spec)
	if err == nil && spec.Pull && sc.watch() {
		err = errPullWatch(spec.Destination)
	}
	return err
}

func errPullWatch(dest string) error {
	return fmt.Errorf("natsbroker: pull from %s: a key-value or object store watch delivers its updates as they come and cannot be pulled: %w", dest, broker.ErrInvalid)
}

// SubscriptionName implements driver.SubscriptionNamer, so telemetry records
// the JetStream consumer a subscription really uses as
// messaging.destination.subscription.name: the consumer given to
// BindConsumer, the durable named by broker.Name (or set with
// ConfigureConsumer), or the durable a group shares. Core NATS, ephemeral
// JetStream and watch (WatchKV, WatchObjects) subscriptions have no name.
func (t *Transport) SubscriptionName(spec driver.SubscriptionSpec) string {
	sc, err := t.subscription(&spec)
	if err != nil || sc.watch() || sc.isCore(t, spec.Destination) {
		return ""
	}
	if sc.bind != "" {
		return sc.bind
	}
	cfg := jetstream.ConsumerConfig{Durable: spec.Name}
	if cfg.Durable == "" && spec.Group != "" {
		cfg.Durable = groupDurable(spec.Group, spec.Destination)
	}
	for _, f := range sc.configure {
		f(&cfg)
	}
	return cfg.Durable
}
