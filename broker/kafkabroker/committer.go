package kafkabroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/tracebus/tracebus/broker"
)

var (
	errSettledTwice    = errors.New("kafkabroker: delivery settled twice")
	errCommitterClosed = fmt.Errorf("kafkabroker: commit after the partitions were released: %w", broker.ErrClosed)
)

// commitRequest asks to commit offsets (partition -> next offset to read).
// done is nil for deferred commits (WithCommitInterval).
type commitRequest struct {
	offsets map[int]int64
	done    chan error
}

// committer commits the offsets of one consumer group generation. One
// goroutine sends the commits, so concurrent lanes share requests: every
// request waiting while a commit is on the wire goes out merged in the next
// one.
type committer struct {
	gen      *kafka.Generation
	topic    string
	interval time.Duration
	s        *subscription

	reqs   chan commitRequest
	quit   chan struct{}
	exited chan struct{}
}

func newCommitter(gen *kafka.Generation, topic string, interval time.Duration, s *subscription) *committer {
	c := &committer{
		gen:      gen,
		topic:    topic,
		interval: interval,
		s:        s,
		reqs:     make(chan commitRequest),
		quit:     make(chan struct{}),
		exited:   make(chan struct{}),
	}
	go c.loop()
	return c
}

// commit commits offsets, or with a commit interval records them for the
// next periodic commit.
func (c *committer) commit(ctx context.Context, offsets map[int]int64) error {
	req := commitRequest{offsets: offsets}
	if c.interval == 0 {
		req.done = make(chan error, 1)
	}
	select {
	case c.reqs <- req:
	case <-c.quit:
		return errCommitterClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	if req.done == nil {
		return nil
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close commits what is pending and stops the committer.
func (c *committer) close() {
	close(c.quit)
	<-c.exited
}

func (c *committer) loop() {
	defer close(c.exited)
	pending := make(map[int]int64)
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
		if r.done != nil {
			waiters = append(waiters, r.done)
		}
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
			err = c.gen.CommitOffsets(map[string]map[int]int64{c.topic: pending})
			if err != nil {
				err = fmt.Errorf("kafkabroker: commit offsets %v of %s for group %s: %w", pending, c.topic, c.gen.GroupID, err)
			}
			pending = make(map[int]int64)
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
			flush()
		case <-c.quit:
			drain()
			flush()
			return
		}
	}
}
