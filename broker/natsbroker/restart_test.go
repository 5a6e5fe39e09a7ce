package natsbroker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// seen records which bodies a handler got, and how often.
type seen struct {
	mu sync.Mutex
	m  map[string]int
}

func newSeen() *seen { return &seen{m: make(map[string]int)} }

func (s *seen) add(body string) {
	s.mu.Lock()
	s.m[body]++
	s.mu.Unlock()
}

func (s *seen) has(body string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[body] > 0
}

// missing returns the bodies of want not seen yet.
func (s *seen) missing(want []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, w := range want {
		if s.m[w] == 0 {
			out = append(out, w)
		}
	}
	return out
}

// TestRestart shuts the server down and starts it again on the same port
// and store while core and JetStream subscriptions (plain and batch) run,
// with messages in flight. Every JetStream message published before,
// around and after the restart must be handled; core subscriptions must
// carry on. No user code deals with the restart.
func TestRestart(t *testing.T) {
	srv := natstest.New(t)
	if !srv.Embedded() {
		t.Skip("restart needs the embedded server")
	}
	js := jetStreamClient(t, srv)
	createStream(t, srv, js, "RESTART", "restart.>")

	b := broker.New(connect(t, srv, natsbroker.WithJetStream("restart.>")))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	// A short AckWait makes a message lost with the connection come back
	// quickly; the transport keeps slow handlers alive below it.
	ackWait := natsbroker.ConfigureConsumer(func(c *jetstream.ConsumerConfig) { c.AckWait = time.Second })
	jobs, batched, pings := newSeen(), newSeen(), newSeen()
	// The handlers hold message "before-10" until the server is down, so
	// that it, and the messages queued behind it, are in flight across the
	// shutdown: their acks cannot reach the server that delivered them.
	down := make(chan struct{})
	if err := b.Subscribe("restart.jobs", func(_ context.Context, m *broker.Message) error {
		if string(m.Body) == "before-10" {
			<-down
		}
		jobs.add(string(m.Body))
		return nil
	}, broker.Name("jobs"), ackWait); err != nil {
		t.Fatal(err)
	}
	if err := b.SubscribeBatch("restart.batch", func(_ context.Context, msgs []*broker.Message) error {
		for _, m := range msgs {
			if string(m.Body) == "before-10" {
				<-down
			}
			batched.add(string(m.Body))
		}
		return nil
	}, broker.Name("batch"), broker.Batch(10, 50*time.Millisecond), ackWait); err != nil {
		t.Fatal(err)
	}
	if err := b.Subscribe("ping", func(_ context.Context, m *broker.Message) error {
		pings.add(string(m.Body))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}

	var wantJobs, wantBatch []string
	// publish sends a JetStream message, retrying until the server takes
	// it: across a restart the first attempts fail, and the message id
	// makes a retry that did arrive a duplicate the stream drops.
	publish := func(subject, body string) {
		t.Helper()
		testutil.Eventually(t, time.Minute, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			return b.Publish(ctx, &broker.Message{Destination: subject, ID: subject + "/" + body, Body: []byte(body)}) == nil
		}, "publish "+body)
		if subject == "restart.jobs" {
			wantJobs = append(wantJobs, body)
		} else {
			wantBatch = append(wantBatch, body)
		}
	}
	for i := range 50 {
		publish("restart.jobs", fmt.Sprintf("before-%d", i))
		publish("restart.batch", fmt.Sprintf("before-%d", i))
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	close(down)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	err := b.Publish(ctx, &broker.Message{Destination: "restart.jobs", Body: []byte("while down")})
	cancel()
	if err == nil {
		t.Fatal("a JetStream publish succeeded while the server was down")
	}
	if err := srv.StartAgain(); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		publish("restart.jobs", fmt.Sprintf("after-%d", i))
		publish("restart.batch", fmt.Sprintf("after-%d", i))
	}
	testutil.Eventually(t, time.Minute, func() bool {
		return len(jobs.missing(wantJobs)) == 0 && len(batched.missing(wantBatch)) == 0
	}, "JetStream messages handled after the restart")

	// Core NATS: no message is kept while the server is down, but the
	// subscription is back without anyone subscribing again.
	testutil.Eventually(t, time.Minute, func() bool {
		_ = b.Publish(context.Background(), &broker.Message{Destination: "ping", Body: []byte("ping")})
		return pings.has("ping")
	}, "core subscription receives after the restart")
	if missing := jobs.missing(wantJobs); len(missing) > 0 {
		t.Errorf("lost JetStream messages: %v", missing)
	}
	if missing := batched.missing(wantBatch); len(missing) > 0 {
		t.Errorf("lost JetStream messages in batches: %v", missing)
	}
}

// TestConsumerRecreated deletes the durable consumer of a running
// subscription, as an operator might; the subscription creates it again and
// goes on consuming.
func TestConsumerRecreated(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch=%v", batch), func(t *testing.T) {
			srv := natstest.New(t)
			js := jetStreamClient(t, srv)
			createStream(t, srv, js, "GONE", "gone")
			b := broker.New(connect(t, srv, natsbroker.WithJetStream()))
			t.Cleanup(func() { _ = b.Close(context.Background()) })
			got := newSeen()
			var userErrs atomic.Int32
			var err error
			if batch {
				err = b.SubscribeBatch("gone", func(_ context.Context, msgs []*broker.Message) error {
					for _, m := range msgs {
						got.add(string(m.Body))
					}
					return nil
				}, broker.Name("durable"), broker.Batch(0, 50*time.Millisecond))
			} else {
				// The user's error handler sees the deletion too, and a
				// byte limit replaces the transport's message limit.
				err = b.Subscribe("gone", func(_ context.Context, m *broker.Message) error {
					got.add(string(m.Body))
					return nil
				}, broker.Name("durable"), natsbroker.ConsumeOptions(
					jetstream.PullMaxBytes(1<<20),
					jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
						if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
							userErrs.Add(1)
						}
					}),
				))
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			publishOK(t, b, "gone", "first")
			testutil.Eventually(t, time.Minute, func() bool { return got.has("first") }, "first message")

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := js.DeleteConsumer(ctx, "GONE", "durable"); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, time.Minute, func() bool {
				_, err := js.Consumer(ctx, "GONE", "durable")
				return err == nil
			}, "consumer created again")
			publishOK(t, b, "gone", "second")
			testutil.Eventually(t, time.Minute, func() bool { return got.has("second") }, "message after the consumer was deleted")
			if n := userErrs.Load(); !batch && n != 1 {
				t.Errorf("the user's ConsumeErrHandler heard of the deletion %d times, want once", n)
			}
		})
	}
}

func publishOK(t *testing.T, b *broker.Broker, dest, body string) {
	t.Helper()
	if err := b.Publish(context.Background(), &broker.Message{Destination: dest, Body: []byte(body)}); err != nil {
		t.Fatalf("publish %q: %v", body, err)
	}
}
