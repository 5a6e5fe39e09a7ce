package kafkabroker_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/internal/e2ebench"
	"github.com/tracebus/tracebus/testutil/kafkatest"
)

// BenchmarkScale measures how throughput and CPU per message change with
// the partitions of the topic, the concurrency of the subscription and the
// message size, on an in-process kfake cluster, for raw kafka-go, tracebus
// untraced and tracebus traced (AlwaysOn) in the same run.
//
// One group member consumes every partition and commits each offset
// before it handles the next message of that partition (the default of
// kafka-go and of the transport). tracebus spreads the partitions over
// min(Concurrency, Partitions) lanes (broker.Concurrency); raw kafka-go
// does what a user of its Reader writes for the same: one goroutine calls
// FetchMessage and hands each message to the worker of its partition
// (partition modulo the workers), which commits it, so that each
// partition keeps its order in both.
//
// One goroutine publishes batches of e2ebench.ScaleBatch keyless messages,
// which go to the partitions round-robin (PublishBatch;
// Writer.WriteMessages with kafka.RoundRobin), at most e2ebench.ScaleWindow
// messages in flight; a handler does nothing. See e2ebench for the command and the metrics.
//
//	go test -run '^$' -bench Scale -benchtime 2000x ./broker/kafkabroker -args -scale.rounds=3
func BenchmarkScale(b *testing.B) {
	c, err := kafkatest.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	e2ebench.RunScale(b, e2ebench.Cells(), e2ebench.ScaleVariants, func(b *testing.B, cell e2ebench.Cell, v string) {
		benchScale(b, c, cell, v)
	})
}

// BenchmarkScaleKnobs runs the workload of BenchmarkScale on the cells of
// e2ebench.KnobCells with tracebus untraced and one setting changed per
// variant (see scaleKnobs), beside raw kafka-go and untraced tracebus with
// the defaults.
//
//	go test -run '^$' -bench ScaleKnobs -benchtime 2000x ./broker/kafkabroker -args -scale.rounds=3
func BenchmarkScaleKnobs(b *testing.B) {
	c, err := kafkatest.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	variants := []string{e2ebench.Raw, e2ebench.Untraced, "queue-10", "queue-1000", "batch-16", "interval", "pub-1", "pub-16"}
	e2ebench.RunScale(b, e2ebench.KnobCells(), variants, func(b *testing.B, cell e2ebench.Cell, v string) {
		benchScale(b, c, cell, v)
	})
}

// scaleKnobs are the settings a variant of BenchmarkScaleKnobs changes,
// from the defaults of the untraced variant.
type scaleKnobs struct {
	queue    int           // WithQueueCapacity(queue)
	batch    int           // SubscribeBatch with BatchSize(batch), BatchWait's default
	commit   time.Duration // ReaderConfig.CommitInterval
	pubBatch int           // messages per publish call, 1 with Publish; default e2ebench.ScaleBatch
}

var kafkaKnobs = map[string]scaleKnobs{
	"queue-10": {queue: 10}, "queue-1000": {queue: 1000}, "batch-16": {batch: 16},
	"interval": {commit: time.Second}, "pub-1": {pubBatch: 1}, "pub-16": {pubBatch: 16},
}

func benchScale(b *testing.B, c *kafkatest.Cluster, cell e2ebench.Cell, variant string) {
	ctx := context.Background()
	topic := fmt.Sprintf("scale-%d", cell.Seq)
	if err := c.CreateTopicContext(ctx, topic, cell.Partitions); err != nil {
		b.Fatal(err)
	}
	// kfake keeps every record in memory: a run's 64 KiB bodies would add
	// up to gigabytes over the matrix.
	b.Cleanup(func() {
		_, _ = c.Client().DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	})
	w := e2ebench.NewWindow(e2ebench.ScaleWindow)
	body := cell.Body()
	var publish, flush func() error
	if variant == e2ebench.Raw {
		publish, flush = rawScale(b, c, cell, topic, body, w)
	} else {
		k, knob := kafkaKnobs[variant]
		if knob {
			variant = e2ebench.Untraced
		}
		opts := append(c.TransportOptions(), kafkabroker.WithReaderConfig(func(rc *kafka.ReaderConfig) { rc.CommitInterval = k.commit }))
		if k.queue > 0 {
			opts = append(opts, kafkabroker.WithReaderConfig(func(rc *kafka.ReaderConfig) { rc.QueueCapacity = k.queue }))
		}
		br := broker.New(mustTransport(b, c, opts...), e2ebench.BrokerOptions(b, variant)...)
		b.Cleanup(func() { _ = br.Close(ctx) })
		sopts := []broker.SubscribeOption{broker.Group("g-" + topic), broker.Concurrency(cell.Concurrency), kafkabroker.StartOffset(kafka.FirstOffset)}
		if err := e2ebench.Subscribe(br, topic, w, k.batch, sopts...); err != nil {
			b.Fatal(err)
		}
		if err := br.Start(ctx); err != nil {
			b.Fatal(err)
		}
		publish, flush = e2ebench.Publisher(br, k.pubBatch, func() *broker.Message {
			return &broker.Message{Destination: topic, Body: body}
		})
	}
	e2ebench.RunCell(b, cell, w, publish, flush)
}

// rawScale wires raw kafka-go for cell: a consumer-group Reader whose
// messages go to min(Concurrency, Partitions) workers by partition, each
// committing what it handled, and a Writer of batches spread round-robin.
func rawScale(b *testing.B, c *kafkatest.Cluster, cell e2ebench.Cell, topic string, body []byte, w e2ebench.Window) (publish, flush func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	r := rawReader(c, topic, 0)
	handle := func(m kafka.Message) bool {
		if err := r.CommitMessages(ctx, m); err != nil {
			return false
		}
		w.Done()
		return true
	}
	var wg sync.WaitGroup
	workers := make([]chan kafka.Message, min(cell.Concurrency, cell.Partitions))
	for i := range workers {
		if len(workers) == 1 {
			break // the fetching goroutine handles every message itself
		}
		in := make(chan kafka.Message, e2ebench.ScaleWindow)
		workers[i] = in
		wg.Go(func() {
			for m := range in {
				if !handle(m) {
					return
				}
			}
		})
	}
	wg.Go(func() {
		defer func() {
			for _, in := range workers {
				if in != nil {
					close(in)
				}
			}
		}()
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				return
			}
			if len(workers) == 1 {
				if !handle(m) {
					return
				}
				continue
			}
			select {
			case workers[m.Partition%len(workers)] <- m:
			case <-ctx.Done():
				return
			}
		}
	})
	b.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = r.Close()
	})

	wr := rawWriter(b, c, false)
	wr.Balancer = &kafka.RoundRobin{}
	batch := e2ebench.NewBatch(e2ebench.ScaleBatch, func(msgs []kafka.Message) error { return wr.WriteMessages(context.Background(), msgs...) })
	return func() error { return batch.Add(kafka.Message{Topic: topic, Value: body}) }, batch.Flush
}
