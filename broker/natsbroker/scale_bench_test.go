package natsbroker_test

import (
	"context"
	"fmt"
	"testing"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/internal/e2ebench"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// BenchmarkScale measures how throughput and CPU per message change with
// the number of partitions, the concurrency of the subscriptions and the
// message size, on JetStream in an embedded nats-server, for raw nats.go,
// tracebus untraced and tracebus traced (AlwaysOn) in the same run.
//
// A JetStream stream has no partitions; what stands for them here is what
// NATS recommends for partitioned processing: the stream's messages are
// spread round-robin over Partitions subjects, and each subject is read by
// a durable consumer of its own (FilterSubject), which keeps that subject's
// order as a Kafka partition does. tracebus subscribes once per subject
// with broker.Concurrency(Concurrency); raw nats.go calls Consume
// Concurrency times on each consumer (every Consume has its own callback
// goroutine). So up to Partitions×Concurrency messages are handled at once,
// where Kafka's Concurrency is per subscription and capped by the
// partitions. Both pull nats.go's default of 500 messages per Consume.
//
// One goroutine publishes batches of e2ebench.ScaleBatch messages
// asynchronously (PublishBatch; PublishMsgAsync and every acknowledgement
// awaited), at most e2ebench.ScaleWindow messages in flight; a handler does
// nothing but acknowledge. See e2ebench for the command and the metrics.
//
//	go test -run '^$' -bench Scale -benchtime 2000x ./broker/natsbroker -args -scale.rounds=3
func BenchmarkScale(b *testing.B) {
	srv := natstest.New(b)
	e2ebench.RunScale(b, e2ebench.Cells(), e2ebench.ScaleVariants, func(b *testing.B, c e2ebench.Cell, v string) {
		benchScale(b, srv, c, v)
	})
}

// BenchmarkScaleKnobs runs the workload of BenchmarkScale on the cells of
// e2ebench.KnobCells with tracebus untraced and one setting changed per
// variant (see scaleKnobs), beside raw nats.go and untraced tracebus with
// the defaults.
//
//	go test -run '^$' -bench ScaleKnobs -benchtime 2000x ./broker/natsbroker -args -scale.rounds=3
func BenchmarkScaleKnobs(b *testing.B) {
	srv := natstest.New(b)
	variants := []string{e2ebench.Raw, e2ebench.Untraced, "pull-16", "pull-100", "batch-16", "pub-1", "pub-16"}
	e2ebench.RunScale(b, e2ebench.KnobCells(), variants, func(b *testing.B, c e2ebench.Cell, v string) {
		benchScale(b, srv, c, v)
	})
}

// scaleKnobs are the settings a variant of BenchmarkScaleKnobs changes,
// from the defaults of the untraced variant.
type scaleKnobs struct {
	pull     int // ConsumeOptions(jetstream.PullMaxMessages(pull))
	batch    int // SubscribeBatch with BatchSize(batch), BatchWait's default
	pubBatch int // messages per publish call, 1 with Publish; default e2ebench.ScaleBatch
}

var natsKnobs = map[string]scaleKnobs{
	"pull-16": {pull: 16}, "pull-100": {pull: 100}, "batch-16": {batch: 16},
	"pub-1": {pubBatch: 1}, "pub-16": {pubBatch: 16},
}

func benchScale(b *testing.B, srv *natstest.Server, c e2ebench.Cell, variant string) {
	ctx := context.Background()
	n := c.Seq
	prefix := fmt.Sprintf("scale.%d", n)
	subjects := make([]string, c.Partitions)
	for i := range subjects {
		subjects[i] = fmt.Sprintf("%s.%d", prefix, i)
	}
	jsc, err := jetstream.New(srv.Connect(b))
	if err != nil {
		b.Fatal(err)
	}
	name := fmt.Sprintf("SCALE_%d", n)
	// A stream that keeps a few windows of messages is enough (consumers
	// are never further behind than one window) and keeps the server
	// within its JetStream memory with 64 KiB bodies.
	if _, err := jsc.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{prefix + ".*"},
		Storage: jetstream.MemoryStorage, MaxMsgs: 16 * e2ebench.ScaleWindow, MaxBytes: 64 << 20,
		Discard: jetstream.DiscardOld}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = jsc.DeleteStream(context.Background(), name) })

	w := e2ebench.NewWindow(e2ebench.ScaleWindow)
	body := c.Body()
	next := 0 // the subject of the next message, round-robin
	subject := func() string {
		s := subjects[next]
		next = (next + 1) % len(subjects)
		return s
	}
	var publish, flush func() error
	if variant == e2ebench.Raw {
		publish, flush = rawScale(b, srv, c, name, subjects, subject, body, w)
	} else {
		k, knob := natsKnobs[variant]
		if knob {
			variant = e2ebench.Untraced
		}
		tr, err := natsbroker.Connect(srv.URL(), natsbroker.WithJetStream(prefix+".*"))
		if err != nil {
			b.Fatal(err)
		}
		br := broker.New(tr, e2ebench.BrokerOptions(b, variant)...)
		b.Cleanup(func() { _ = br.Close(ctx) })
		opts := []broker.SubscribeOption{broker.Group("scale"), broker.Concurrency(c.Concurrency)}
		if k.pull > 0 {
			opts = append(opts, natsbroker.ConsumeOptions(jetstream.PullMaxMessages(k.pull)))
		}
		for _, s := range subjects {
			if err := e2ebench.Subscribe(br, s, w, k.batch, opts...); err != nil {
				b.Fatal(err)
			}
		}
		if err := br.Start(ctx); err != nil {
			b.Fatal(err)
		}
		publish, flush = e2ebench.Publisher(br, k.pubBatch, func() *broker.Message {
			return &broker.Message{Destination: subject(), Body: body}
		})
	}
	e2ebench.RunCell(b, c, w, publish, flush)
}

// rawScale wires raw nats.go for cell c: a durable consumer per subject of
// stream, Consume called c.Concurrency times on each, and a publisher of
// asynchronous batches.
func rawScale(b *testing.B, srv *natstest.Server, c e2ebench.Cell, stream string, subjects []string, subject func() string, body []byte, w e2ebench.Window) (publish, flush func() error) {
	ctx := context.Background()
	jsPub, err := jetstream.New(srv.Connect(b))
	if err != nil {
		b.Fatal(err)
	}
	jsSub, err := jetstream.New(srv.Connect(b))
	if err != nil {
		b.Fatal(err)
	}
	for i, s := range subjects {
		cons, err := jsSub.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: fmt.Sprintf("p%d", i),
			FilterSubject: s, AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			b.Fatal(err)
		}
		for range c.Concurrency {
			cc, err := cons.Consume(func(m jetstream.Msg) {
				_ = m.Ack()
				w.Done()
			})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(cc.Stop)
		}
	}
	futures := make([]jetstream.PubAckFuture, e2ebench.ScaleBatch)
	batch := e2ebench.NewBatch(e2ebench.ScaleBatch, func(msgs []*natsgo.Msg) error { return publishAsync(jsPub, msgs, futures) })
	return func() error { return batch.Add(&natsgo.Msg{Subject: subject(), Data: body}) }, batch.Flush
}
