package e2ebench

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"testing"

	"github.com/tracebus/tracebus/broker"
)

// The scale benchmarks of the transports run one end-to-end workload over a
// matrix of partitions, concurrency and message sizes, for the variants of
// ScaleVariants, and report what Run reports for each cell:
//
//	go test -run '^$' -bench Scale -benchtime 2000x ./broker/natsbroker ./broker/kafkabroker -args -scale.rounds=3
//
// Each cell runs its variants in turn, -scale.rounds times, so that a
// change in the machine's load falls on every variant of the cell alike;
// testing names the repetitions of a sub-benchmark name#01, name#02, and
// `sed -E 's/#[0-9]+//'` makes them one name again for benchstat.
var scaleRounds = flag.Int("scale.rounds", 1,
	"e2ebench: how many times the scale benchmarks run each cell, its variants in turn")

// The dimensions of the scale matrix.
var (
	// ScalePartitions are the partition counts: a Kafka topic's partitions,
	// or JetStream subjects of one stream, each read by a consumer of its own.
	ScalePartitions = []int{1, 4, 16}
	// ScaleConcurrency are the concurrency settings of a subscription
	// (broker.Concurrency), and what the raw client does in their place.
	ScaleConcurrency = []int{1, 4, 16}
	// ScaleSizes are the body sizes, in bytes.
	ScaleSizes = []int{100, 1 << 10, 64 << 10}
	// ScaleVariants are the variants of every cell, in the order they run.
	ScaleVariants = []string{Raw, Untraced, Traced}
)

// The workload of every cell.
const (
	// ScaleWindow is how many messages may be in flight.
	ScaleWindow = 256
	// ScaleBatch is how many messages one publish call sends.
	ScaleBatch = 64
)

// Cell is one point of the scale matrix.
type Cell struct {
	// Partitions is the number of partitions the messages are spread
	// over, round-robin.
	Partitions int
	// Concurrency is how many deliveries may run at once.
	Concurrency int
	// Size is the body size of every message, in bytes.
	Size int
	// Seq numbers the runs of RunScale from 1, so that each run can
	// have a stream or topic of its own.
	Seq int
}

// Cells returns every cell of the matrix, message size first, then
// partitions, then concurrency.
func Cells() []Cell {
	var cells []Cell
	for _, size := range ScaleSizes {
		for _, p := range ScalePartitions {
			for _, c := range ScaleConcurrency {
				cells = append(cells, Cell{Partitions: p, Concurrency: c, Size: size})
			}
		}
	}
	return cells
}

// Name is the cell's sub-benchmark name, such as "size=1KiB/part=4/conc=16".
func (c Cell) Name() string {
	size := fmt.Sprintf("%dB", c.Size)
	switch {
	case c.Size >= 1<<20 && c.Size%(1<<20) == 0:
		size = fmt.Sprintf("%dMiB", c.Size>>20)
	case c.Size >= 1<<10 && c.Size%(1<<10) == 0:
		size = fmt.Sprintf("%dKiB", c.Size>>10)
	}
	return fmt.Sprintf("size=%s/part=%d/conc=%d", size, c.Partitions, c.Concurrency)
}

// Body returns a body of c.Size bytes.
func (c Cell) Body() []byte { return make([]byte, c.Size) }

// KnobCells returns the cells where the scale benchmarks compare the
// settings of a subscription and of publishing: 4 partitions, concurrency
// 4, bodies of 1 KiB and 64 KiB.
func KnobCells() []Cell {
	return []Cell{{Partitions: 4, Concurrency: 4, Size: 1 << 10}, {Partitions: 4, Concurrency: 4, Size: 64 << 10}}
}

// RunScale runs bench for every cell and every variant, as the
// sub-benchmark cell/variant. The variants of a cell run in turn, as many
// times as the -scale.rounds flag says (once by default).
func RunScale(b *testing.B, cells []Cell, variants []string, bench func(b *testing.B, c Cell, variant string)) {
	seq := 0
	for _, c := range cells {
		b.Run(c.Name(), func(b *testing.B) {
			for range max(*scaleRounds, 1) {
				for _, v := range variants {
					seq++
					c.Seq = seq
					b.Run(v, func(b *testing.B) { bench(b, c, v) })
				}
			}
		})
	}
}

// RunCell is Run for the messages of cell c: it reports bytes of c.Size
// per message and, before measuring, publishes and awaits one message per
// partition, so that no partition's consumer is still starting when the
// measurement begins. w must hold at least c.Partitions messages.
func RunCell(b *testing.B, c Cell, w Window, publish, flush func() error) {
	run(b, w, c.Size, max(c.Partitions, 1), publish, flush)
}

// Subscribe subscribes br to destination with a handler that frees a slot
// of w per message it is given: with SubscribeBatch and Batch(batch, 0)
// when batch is above 0, with Subscribe otherwise.
func Subscribe(br *broker.Broker, destination string, w Window, batch int, opts ...broker.SubscribeOption) error {
	if batch > 0 {
		return br.SubscribeBatch(destination, func(_ context.Context, msgs []*broker.Message) error {
			for range msgs {
				w.Done()
			}
			return nil
		}, append(opts, broker.Batch(batch, 0))...)
	}
	return br.Subscribe(destination, func(context.Context, *broker.Message) error {
		w.Done()
		return nil
	}, opts...)
}

// Publisher returns the publish and flush functions of a tracebus variant
// for Run: Publish for each message when batch is 1, PublishBatch of batch
// messages otherwise (ScaleBatch when batch is 0). next makes the next
// message.
func Publisher(br *broker.Broker, batch int, next func() *broker.Message) (publish, flush func() error) {
	ctx := context.Background()
	if batch == 1 {
		return func() error { return br.Publish(ctx, next()) }, nil
	}
	b := NewBatch(cmp.Or(batch, ScaleBatch), func(msgs []*broker.Message) error { return br.PublishBatch(ctx, msgs) })
	return func() error { return b.Add(next()) }, b.Flush
}
