package kafkabroker

import (
	"context"
	"errors"
	"slices"
	"sync"

	kafka "github.com/segmentio/kafka-go"
)

// Concurrent publishes to one topic are coalesced: while a write to the
// topic is on the wire, the publishes that arrive wait, and go out together
// in the next write, one WriteMessages call, so one batch per partition and
// one produce request instead of one each. A publish that finds the topic
// idle is written at once: nothing waits for a timer, and the batches grow
// with the concurrency.
//
// kafka-go alone cannot do it: a Writer's batch closes when its
// BatchTimeout fires, and with the timeout of one nanosecond that keeps a
// lone publish fast, each concurrent call becomes a batch and a produce
// request of its own, sent one after the other. A longer timeout would
// delay every lone publish by that much.
//
// Only one coalesced write per topic is in flight, which costs nothing on
// a partition (kafka-go's Writer sends one request at a time to each) and
// keeps the publishes of one topic from waiting behind another topic.

// topicWrites is the coalescing state of one topic.
type topicWrites struct {
	busy    bool            // a write to the topic is in flight
	pending []*pendingWrite // publishes waiting for the next write
}

// pendingWrite is one publish waiting for the next write of its topic.
type pendingWrite struct {
	ctx  context.Context
	msgs []kafka.Message
	done chan error // buffered: the writer never blocks on a caller that left
}

// coalescer holds the coalescing state of the topics with a write in
// flight.
type coalescer struct {
	// direct writes one publish on its own; writeAll writes coalesced
	// publishes (WriteMessages, without direct's wait for an unknown
	// topic, which is left to each publish).
	direct, writeAll func(context.Context, []kafka.Message) error

	mu     sync.Mutex
	topics map[string]*topicWrites
}

// write writes msgs, which all go to one topic, coalesced with the
// concurrent publishes to that topic.
func (c *coalescer) write(ctx context.Context, msgs []kafka.Message) error {
	topic := msgs[0].Topic
	c.mu.Lock()
	q := c.topics[topic]
	if q == nil {
		if c.topics == nil {
			c.topics = make(map[string]*topicWrites)
		}
		q = &topicWrites{}
		c.topics[topic] = q
	}
	if !q.busy {
		q.busy = true
		c.mu.Unlock()
		err := c.direct(ctx, msgs)
		c.next(topic, q)
		return err
	}
	w := &pendingWrite{ctx: ctx, msgs: msgs, done: make(chan error, 1)}
	q.pending = append(q.pending, w)
	c.mu.Unlock()

	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		c.mu.Lock()
		if i := slices.Index(q.pending, w); i >= 0 {
			// Not taken yet: it will not be written.
			q.pending = slices.Delete(q.pending, i, i+1)
			c.mu.Unlock()
			return ctx.Err()
		}
		c.mu.Unlock()
		// Already on the wire: like kafka-go's WriteMessages cancelled
		// while it waits, return without knowing the outcome.
		return ctx.Err()
	}
}

// next starts the write of what is pending for topic, or marks the topic
// idle when nothing is.
func (c *coalescer) next(topic string, q *topicWrites) {
	c.mu.Lock()
	ws := q.pending
	q.pending = nil
	if len(ws) == 0 {
		q.busy = false
		delete(c.topics, topic)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	go func() {
		c.writeTogether(ws)
		c.next(topic, q)
	}()
}

// writeTogether writes the publishes ws with one WriteMessages call and
// gives each its part of the outcome.
func (c *coalescer) writeTogether(ws []*pendingWrite) {
	if len(ws) == 1 {
		ws[0].done <- c.direct(ws[0].ctx, ws[0].msgs)
		return
	}
	n := 0
	for _, w := range ws {
		n += len(w.msgs)
	}
	all := make([]kafka.Message, 0, n)
	for _, w := range ws {
		all = append(all, w.msgs...)
	}
	// No caller's ctx may cancel the others' messages; each caller stops
	// waiting on its own ctx.
	err := c.writeAll(context.Background(), all)
	var werrs kafka.WriteErrors
	switch {
	case err == nil:
		for _, w := range ws {
			w.done <- nil
		}
	case errors.As(err, &werrs) && len(werrs) == len(all):
		// Produce results, aligned with all: each publish gets its own.
		off := 0
		for _, w := range ws {
			part := werrs[off : off+len(w.msgs)]
			off += len(w.msgs)
			if part.Count() == 0 {
				w.done <- nil
			} else {
				w.done <- part
			}
		}
	default:
		// The call failed before anything was written (a message too
		// large, a topic the metadata does not know yet, a closed writer):
		// one publish must not fail the others. Each is written on its own,
		// with its own ctx.
		for _, w := range ws {
			w.done <- c.direct(w.ctx, w.msgs)
		}
	}
}
