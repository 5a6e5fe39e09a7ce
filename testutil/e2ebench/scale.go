package e2ebench

import (
	"flag"
	"fmt"
	"testing"
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

// RunScale runs bench for every cell of Cells and every variant, as the
// sub-benchmark cell/variant. The variants of a cell run in turn, as many
// times as the -scale.rounds flag says (once by default).
func RunScale(b *testing.B, variants []string, bench func(b *testing.B, c Cell, variant string)) {
	seq := 0
	for _, c := range Cells() {
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
