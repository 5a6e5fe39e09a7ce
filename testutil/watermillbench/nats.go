package main

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/natsbroker"
)

// durable is the JetStream consumer of every variant.
const durable = "bench"

func createStream(ctx context.Context, e *env, subject string) error {
	nc, err := natsgo.Connect(e.nats.URL())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: streamName(subject), Subjects: []string{subject}, Storage: jetstream.MemoryStorage})
	return err
}

func deleteStream(ctx context.Context, e *env, subject string) error {
	nc, err := natsgo.Connect(e.nats.URL())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	return js.DeleteStream(ctx, streamName(subject))
}

// rawNATS is nats.go alone: a subscription callback on core NATS; on
// JetStream a durable pull consumer (Consume) acknowledging each message,
// and a synchronous publish.
func rawNATS(js bool) wiring {
	return func(ctx context.Context, e *env, subject string, handle func([]byte) error) (func(context.Context) error, func(), error) {
		pub, err := natsgo.Connect(e.nats.URL())
		if err != nil {
			return nil, nil, err
		}
		sub, err := natsgo.Connect(e.nats.URL())
		if err != nil {
			pub.Close()
			return nil, nil, err
		}
		closeAll := func() { sub.Close(); pub.Close() }
		if !js {
			if _, err := sub.Subscribe(subject, func(m *natsgo.Msg) { _ = handle(m.Data) }); err != nil {
				closeAll()
				return nil, nil, err
			}
			if err := sub.Flush(); err != nil {
				closeAll()
				return nil, nil, err
			}
			return func(context.Context) error { return pub.Publish(subject, payload) }, closeAll, nil
		}
		jsPub, err := jetstream.New(pub)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		jsSub, err := jetstream.New(sub)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		cons, err := jsSub.CreateConsumer(ctx, streamName(subject), jetstream.ConsumerConfig{Durable: durable, AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		cc, err := cons.Consume(func(m jetstream.Msg) {
			if handle(m.Data()) == nil {
				_ = m.Ack()
			} else {
				_ = m.Nak()
			}
		})
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		publish := func(ctx context.Context) error {
			_, err := jsPub.Publish(ctx, subject, payload)
			return err
		}
		return publish, func() { cc.Stop(); closeAll() }, nil
	}
}

// tracebusNATS is a tracebus broker over natsbroker, with the telemetry
// middleware when traced.
func tracebusNATS(js, traced bool) wiring {
	return func(ctx context.Context, e *env, subject string, handle func([]byte) error) (func(context.Context) error, func(), error) {
		var topts []natsbroker.Option
		var sopts []broker.SubscribeOption
		if js {
			topts = append(topts, natsbroker.WithJetStream(subject))
			sopts = append(sopts, broker.Group(durable))
		}
		tr, err := natsbroker.Connect(e.nats.URL(), topts...)
		if err != nil {
			return nil, nil, err
		}
		return tracebusWiring(ctx, tr, traced, subject, handle, sopts...)
	}
}

// tracebusWiring subscribes handle to dest on a broker over tr and starts
// it.
func tracebusWiring(ctx context.Context, tr driver.Transport, traced bool, dest string, handle func([]byte) error, sopts ...broker.SubscribeOption) (func(context.Context) error, func(), error) {
	var bopts []broker.Option
	shutdown := func() {}
	if traced {
		var opt broker.Option
		opt, shutdown = telemetry()
		bopts = append(bopts, opt)
	}
	br := broker.New(tr, bopts...)
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = br.Close(ctx)
		shutdown()
	}
	if err := br.Subscribe(dest, func(_ context.Context, m *broker.Message) error { return handle(m.Body) }, sopts...); err != nil {
		stop()
		return nil, nil, err
	}
	if err := br.Start(ctx); err != nil {
		stop()
		return nil, nil, err
	}
	publish := func(ctx context.Context) error {
		return br.Publish(ctx, &broker.Message{Destination: dest, Body: payload})
	}
	return publish, stop, nil
}

// watermillNATS is watermill-nats with its defaults (NATSMarshaler; on
// JetStream a durable push subscription acknowledged with AckSync and a
// synchronous publish), consumed from the subscription's channel.
func watermillNATS(js bool) wiring {
	return func(ctx context.Context, e *env, subject string, handle func([]byte) error) (func(context.Context) error, func(), error) {
		jsCfg := wmnats.JetStreamConfig{Disabled: !js}
		if js {
			jsCfg.DurablePrefix = durable
			jsCfg.SubscribeOptions = []natsgo.SubOpt{natsgo.DeliverAll(), natsgo.AckExplicit()}
		}
		logger := watermill.NopLogger{}
		pub, err := wmnats.NewPublisher(wmnats.PublisherConfig{URL: e.nats.URL(), JetStream: jsCfg}, logger)
		if err != nil {
			return nil, nil, fmt.Errorf("watermill publisher: %w", err)
		}
		sub, err := wmnats.NewSubscriber(wmnats.SubscriberConfig{URL: e.nats.URL(), JetStream: jsCfg}, logger)
		if err != nil {
			_ = pub.Close()
			return nil, nil, fmt.Errorf("watermill subscriber: %w", err)
		}
		return watermillWiring(ctx, pub, sub, subject, handle)
	}
}

// watermillWiring consumes the subscription of sub to topic in a goroutine,
// acknowledging each message that handle accepted, and publishes with pub.
func watermillWiring(ctx context.Context, pub message.Publisher, sub message.Subscriber, topic string, handle func([]byte) error) (func(context.Context) error, func(), error) {
	subCtx, cancel := context.WithCancel(ctx)
	msgs, err := sub.Subscribe(subCtx, topic)
	if err != nil {
		cancel()
		_ = sub.Close()
		_ = pub.Close()
		return nil, nil, fmt.Errorf("watermill subscribe: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range msgs {
			if handle(m.Payload) == nil {
				m.Ack()
			} else {
				m.Nack()
			}
		}
	}()
	stop := func() {
		cancel()
		_ = pub.Close()
		_ = sub.Close()
		<-done
	}
	publish := func(context.Context) error {
		return pub.Publish(topic, message.NewMessage(watermill.NewUUID(), payload))
	}
	return publish, stop, nil
}
