package kafkabroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/tracebus/tracebus/broker"
)

var (
	errSettledTwice    = errors.New("kafkabroker: delivery settled twice")
	errCommitterClosed = fmt.Errorf("kafkabroker: commit after the partitions were released: %w", broker.ErrClosed)
)

// topicPartition names one partition of one topic.
type topicPartition struct {
	topic     string
	partition int
}

// commitRequest asks to commit offsets (partition -> next offset to read)
// and to be told the outcome on done.
type commitRequest struct {
	offsets map[topicPartition]int64
	done    chan error
}

// committer commits the offsets of one consumer group generation, over
// every topic of the subscription (one, or those a Pattern matched). One
// goroutine sends the commits, so concurrent lanes share requests: every
// request waiting while a commit is on the wire goes out merged in the next
// one.
type committer struct {
	gen      *kafka.Generation
	interval time.Duration
	s        *subscription

	reqs   chan commitRequest
	quit   chan struct{}
	exited chan struct{}

	// deferred holds, with a commit interval, the offsets to commit at
	// the next tick (partition -> next offset to read). Acknowledgements
	// record them here directly rather than through reqs: a goroutine
	// switch per message was a good part of the consume path's cost.
	mu       sync.Mutex
	deferred map[topicPartition]int64
}

func newCommitter(gen *kafka.Generation, interval time.Duration, s *subscription) *committer {
	c := &committer{
		gen:      gen,
		interval: interval,
		s:        s,
		reqs:     make(chan commitRequest),
		quit:     make(chan struct{}),
		exited:   make(chan struct{}),
		deferred: make(map[topicPartition]int64),
	}
	go c.loop()
	return c
}

// commitPast commits the offsets past msgs, or with a commit interval
// records them for the next periodic commit.
func (c *committer) commitPast(ctx context.Context, msgs []kafka.Message) error {
	if c.interval > 0 {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.deferred == nil {
			return errCommitterClosed
		}
		past(c.deferred, msgs)
		return nil
	}
	next := make(map[topicPartition]int64, 1)
	past(next, msgs)
	return c.commit(ctx, next)
}

// past raises the offset of each message's partition in next to the offset
// past the message.
func past(next map[topicPartition]int64, msgs []kafka.Message) {
	for i := range msgs {
		m := &msgs[i]
		k := topicPartition{m.Topic, m.Partition}
		if m.Offset+1 > next[k] {
			next[k] = m.Offset + 1
		}
	}
}

// commit commits offsets and waits for the answer.
func (c *committer) commit(ctx context.Context, offsets map[topicPartition]int64) error {
	req := commitRequest{offsets: offsets, done: make(chan error, 1)}
	select {
	case c.reqs <- req:
	case <-c.quit:
		return errCommitterClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// takeDeferred moves the deferred offsets into pending; with final, no
// offset is recorded after it.
func (c *committer) takeDeferred(pending map[topicPartition]int64, final bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, off := range c.deferred {
		if off > pending[p] {
			pending[p] = off
		}
	}
	clear(c.deferred)
	if final {
		c.deferred = nil
	}
}

// close commits what is pending and stops the committer.
func (c *committer) close() {
	close(c.quit)
	<-c.exited
}

func (c *committer) loop() {
	defer close(c.exited)
	pending := make(map[topicPartition]int64)
	var waiters []chan error
	var tick <-chan time.Time
	if c.interval > 0 {
		ticker := time.NewTicker(c.interval)
		defer ticker.Stop()
		tick = ticker.C
	}
	add := func(r commitRequest) {
		for p, off := range r.offsets {
			if off > pending[p] {
				pending[p] = off
			}
		}
		waiters = append(waiters, r.done)
	}
	drain := func() {
		for {
			select {
			case r := <-c.reqs:
				add(r)
			default:
				return
			}
		}
	}
	flush := func() {
		var err error
		if len(pending) > 0 {
			offsets := make(map[string]map[int]int64, 1)
			for k, off := range pending {
				if offsets[k.topic] == nil {
					offsets[k.topic] = make(map[int]int64, len(pending))
				}
				offsets[k.topic][k.partition] = off
			}
			err = c.gen.CommitOffsets(offsets)
			if err != nil {
				err = fmt.Errorf("kafkabroker: commit offsets %v for group %s: %w", offsets, c.gen.GroupID, err)
			}
			pending = make(map[topicPartition]int64)
		}
		for _, w := range waiters {
			w <- err
		}
		waiters = waiters[:0]
		if err != nil && c.interval > 0 {
			// Nobody waits for a deferred commit: say it here. The
			// messages will be delivered again to the partitions' next
			// owner.
			c.s.log(slog.LevelWarn, "kafkabroker: deferred commit failed", slog.Any("error", err))
		}
	}
	for {
		select {
		case r := <-c.reqs:
			add(r)
			if c.interval == 0 {
				drain()
				flush()
			}
		case <-tick:
			c.takeDeferred(pending, false)
			flush()
		case <-c.quit:
			drain()
			c.takeDeferred(pending, true)
			flush()
			return
		}
	}
}
