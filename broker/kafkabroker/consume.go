package kafkabroker

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/internal/wait"
)

// unsettledRetryDelay is the wait before delivering again messages whose
// deliver call returned without settling them, which the broker never does.
const unsettledRetryDelay = 100 * time.Millisecond

// part is one partition a subscription reads, and the offset it starts at.
type part struct {
	topic  string
	id     int
	offset int64
}

// consume reads the given partitions until stop closes, delivering through
// spec.Concurrency lanes and committing through c (nil: commit nothing).
// It returns once the lanes finished their deliveries in flight and c
// flushed, or as soon as the subscription is abandoned.
func (s *subscription) consume(stop <-chan struct{}, parts []part, c *committer) {
	if c != nil {
		defer c.close()
	}
	if len(parts) == 0 {
		// A group member without partitions (more members than
		// partitions) waits for the next rebalance.
		select {
		case <-stop:
		case <-s.abandon:
		}
		return
	}
	parts = slices.Clone(parts)
	slices.SortFunc(parts, func(a, b part) int {
		if c := strings.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return a.id - b.id
	})

	n := min(s.spec.Concurrency, len(parts))
	// A lane of a single partition that delivers one message at a time
	// reads the partition's reader itself: handing each message from a
	// fetching goroutine to the lane cost a goroutine switch per message.
	// Lanes of several partitions, and batching lanes, which wait for
	// messages with a deadline, are fed by one fetching goroutine per
	// partition.
	own := n == len(parts) && !s.spec.Batch
	fetchCtx, cancelFetch := context.WithCancel(context.Background())
	lanes := make([]*lane, n)
	for i := range lanes {
		capacity := 1
		if s.spec.Batch {
			capacity = s.spec.BatchSize
		}
		lanes[i] = &lane{s: s, c: c, stop: stop, fetchCtx: fetchCtx}
		if !own {
			lanes[i].in = make(chan kafka.Message, capacity)
		}
	}

	var fetchWG sync.WaitGroup
	readers := make([]*kafka.Reader, len(parts))
	for i, p := range parts {
		r := kafka.NewReader(s.t.readerConfig(p.topic, p.id))
		readers[i] = r
		if err := r.SetOffset(p.offset); err != nil {
			s.log(slog.LevelError, "kafkabroker: set offset failed", slog.String("partition.topic", p.topic), slog.Int("partition", p.id), slog.Any("error", err))
			continue
		}
		l := lanes[i%n]
		if own {
			l.r = r
			continue
		}
		fetchWG.Go(func() { s.fetch(fetchCtx, r, l.in) })
	}
	var lanesWG sync.WaitGroup
	for _, l := range lanes {
		if !own || l.r != nil {
			lanesWG.Go(l.run)
		}
	}

	select {
	case <-stop:
	case <-s.abandon:
	}
	cancelFetch()
	fetchWG.Wait()
	var closeWG sync.WaitGroup
	for _, r := range readers {
		closeWG.Go(func() { _ = r.Close() })
	}
	lanesDone := make(chan struct{})
	go func() { lanesWG.Wait(); close(lanesDone) }()
	select {
	case <-lanesDone:
	case <-s.abandon:
	}
	closeWG.Wait()
}

// fetch moves the messages of one partition reader into its lane, in
// offset order, until ctx is cancelled.
func (s *subscription) fetch(ctx context.Context, r *kafka.Reader, out chan<- kafka.Message) {
	for {
		m, ok := s.fetchOne(ctx, r)
		if !ok {
			return
		}
		select {
		case out <- m:
		case <-ctx.Done():
			return
		}
	}
}

// fetchOne returns the next message of r, or false once ctx is cancelled.
func (s *subscription) fetchOne(ctx context.Context, r *kafka.Reader) (kafka.Message, bool) {
	for failures := 1; ; failures++ {
		m, err := r.FetchMessage(ctx)
		if err == nil {
			return m, true
		}
		if ctx.Err() != nil {
			return m, false
		}
		// kafka-go retries connection problems inside the reader;
		// what comes out here is worth a log line and a pause.
		s.log(slog.LevelWarn, "kafkabroker: fetch failed", slog.String("partition.topic", r.Config().Topic), slog.Int("partition", r.Config().Partition), slog.Any("error", err))
		if !wait.Sleep(wait.Retry(failures), ctx.Done()) {
			return m, false
		}
	}
}

// lane delivers the messages of its partitions one delivery at a time.
type lane struct {
	s    *subscription
	c    *committer
	stop <-chan struct{}
	// Messages come from r, the lane's only partition, when it is set,
	// and otherwise from in.
	r        *kafka.Reader
	fetchCtx context.Context // cancelled when the lane must stop reading r
	in       chan kafka.Message
}

// next waits for the next message, reporting false when the lane must
// stop.
func (l *lane) next() (kafka.Message, bool) {
	if l.r != nil {
		return l.s.fetchOne(l.fetchCtx, l.r)
	}
	select {
	case <-l.stop:
		return kafka.Message{}, false
	case m := <-l.in:
		return m, true
	}
}

func (l *lane) run() {
	spec := &l.s.spec
	for {
		first, ok := l.next()
		if !ok {
			return
		}
		// Both may be ready; stopping wins, and the message stays
		// uncommitted for whoever reads the partition next.
		if isClosed(l.stop) {
			return
		}
		batch := []kafka.Message{first}
		if spec.Batch && spec.BatchSize > 1 {
			var ok bool
			if batch, ok = l.collect(batch); !ok {
				return
			}
		}
		l.process(batch)
	}
}

// collect adds messages to batch until it is full or BatchWait passed
// since its first message. It reports false when the lane must stop.
func (l *lane) collect(batch []kafka.Message) ([]kafka.Message, bool) {
	spec := &l.s.spec
	timer := time.NewTimer(spec.BatchWait)
	defer timer.Stop()
	for len(batch) < spec.BatchSize {
		select {
		case m := <-l.in:
			batch = append(batch, m)
		case <-timer.C:
			return batch, true
		case <-l.stop:
			return nil, false
		}
	}
	return batch, true
}

// process delivers msgs until they are acknowledged or terminated, retrying
// in place after each Nak. It gives up, leaving the messages uncommitted,
// when the lane stops during a retry delay.
func (l *lane) process(msgs []kafka.Message) {
	s := l.s
	for count := 1; ; count++ {
		a := &acker{lane: l, msgs: msgs}
		s.deliver(s.ctx, toMessages(msgs, s.spec.Destination, s.spec.Group, count), a)
		a.mu.Lock()
		action, delay := a.action, a.delay
		a.mu.Unlock()
		switch action {
		case settledAck, settledTerm:
			return
		case settledNak:
		default:
			s.log(slog.LevelError, "kafkabroker: delivery returned unsettled, delivering again",
				slog.Int("messages", len(msgs)))
			delay = unsettledRetryDelay
		}
		// The broker gave up on its handlers (a Close or Stop whose ctx
		// ended): another attempt would only meet a cancelled ctx. The
		// messages stay uncommitted, so the group delivers them again.
		if s.ctx.Err() != nil || !wait.Sleep(delay, l.stop) {
			return
		}
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

type settlement uint8

const (
	unsettled settlement = iota
	settledAck
	settledNak
	settledTerm
)

// acker settles one delivery attempt; it implements driver.Acknowledger.
type acker struct {
	lane *lane
	msgs []kafka.Message

	mu     sync.Mutex
	action settlement
	delay  time.Duration
}

var _ driver.Acknowledger = (*acker)(nil)

// Ack commits the offsets past the delivered messages.
func (a *acker) Ack(ctx context.Context) error {
	if !a.settle(settledAck, 0) {
		return errSettledTwice
	}
	return a.commit(ctx)
}

// Nak makes the lane deliver the same messages again after delay.
func (a *acker) Nak(_ context.Context, delay time.Duration) error {
	if !a.settle(settledNak, delay) {
		return errSettledTwice
	}
	return nil
}

// Term commits past the messages: the broker already dead-lettered or
// dropped them, and Kafka has no per-message rejection.
func (a *acker) Term(ctx context.Context) error {
	if !a.settle(settledTerm, 0) {
		return errSettledTwice
	}
	return a.commit(ctx)
}

func (a *acker) settle(action settlement, delay time.Duration) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.action != unsettled {
		return false
	}
	a.action, a.delay = action, delay
	return true
}

func (a *acker) commit(ctx context.Context) error {
	c := a.lane.c
	if c == nil {
		return nil
	}
	return c.commitPast(ctx, a.msgs)
}
