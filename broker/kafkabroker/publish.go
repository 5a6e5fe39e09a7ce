package kafkabroker

import (
	"context"
	"errors"
	"fmt"
	"io"

	kafka "github.com/segmentio/kafka-go"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
)

// Publish writes msgs with one WriteMessages call of the transport's
// kafka-go Writer and returns once the brokers acknowledged them (see
// WithWriterConfig for RequiredAcks).
//
// Each message goes to the topic named by its Destination, to the partition
// in Message.Partition when set and otherwise to the one the balancer picks
// from its Key. Headers keep their order, case and duplicates; their values
// are written as bytes unchanged. A nil Body is written as a null value, a
// tombstone when the message has a key. Message.ID, which Kafka records
// have no field for, travels in the driver.HeaderMessageID header and
// Message.ReplyTo in the driver.HeaderReplyTo header.
//
// When a batch fails in part, the error is a broker.BatchError aligned with
// msgs, so the caller knows exactly which messages were not written. Every
// message the brokers accepted reports where it was stored: its
// Delivery.Partition (asked for, or the balancer's choice) and
// Delivery.Offset, with Delivery.Stored set, which the telemetry
// middleware records on the send span.
func (t *Transport) Publish(ctx context.Context, msgs []*broker.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if t.isClosed() {
		return broker.ErrClosed
	}
	if t.cfg.createPartitions != 0 {
		for _, m := range msgs {
			if err := t.ensureTopic(ctx, m.Destination); err != nil {
				return err
			}
		}
	}

	// kafka-go may still hold the messages' byte slices after WriteMessages
	// returned early because ctx was cancelled. Publish promises not to
	// retain them, so when ctx can be cancelled, keys and bodies are written
	// from copies. Header values are converted to bytes anyway; they share
	// one arena, and the kafka headers of all messages one slice.
	copyAll := ctx.Done() != nil
	keys, values, nh := arenaSize(msgs)
	if !copyAll {
		keys, values = 0, 0
	}
	arena := make([]byte, 0, keys+values)
	var hdrArena []byte
	var hdrs []kafka.Header
	if nh > 0 {
		hdrArena = make([]byte, 0, headerSize(msgs))
		hdrs = make([]kafka.Header, 0, nh)
	}

	slots := make([]writeSlot, len(msgs))
	var (
		errs    broker.BatchError // allocated on the first failure
		out     = make([]kafka.Message, 0, len(msgs))
		indexes []int // out[i] is msgs[indexes[i]]; nil while identical
	)
	fail := func(i int, err error) {
		if errs == nil {
			errs = make(broker.BatchError, len(msgs))
		}
		errs[i] = err
		if indexes == nil {
			indexes = make([]int, len(out), len(msgs))
			for j := range indexes {
				indexes[j] = j
			}
		}
	}
	var known string // the last destination found to exist
	for i, m := range msgs {
		m.Delivery.Stored = false
		if !t.autoCreate() && m.Destination != known {
			if err := t.checkTopic(ctx, m.Destination); err != nil {
				fail(i, err)
				continue
			}
			known = m.Destination
		}
		km := kafka.Message{Topic: m.Destination, WriterData: &slots[i]}
		if m.Partition != nil {
			p := *m.Partition
			var n int
			err := t.awaitTopic(ctx, func() (err error) {
				n, err = t.partitionCount(ctx, m.Destination)
				return err
			})
			switch {
			case err != nil:
				fail(i, fmt.Errorf("kafkabroker: publish %s: %w", m.Destination, err))
				continue
			case p < 0 || int(p) >= n:
				fail(i, fmt.Errorf("kafkabroker: publish %s: partition %d of %d: %w", m.Destination, p, n, ErrUnknownPartition))
				continue
			}
			slots[i].explicit, slots[i].partition = true, p
		}
		if copyAll {
			km.Key, arena = copyInto(arena, m.Key)
			km.Value, arena = copyInto(arena, m.Body)
		} else {
			km.Key, km.Value = m.Key, m.Body
		}
		if len(m.Headers) > 0 || m.ReplyTo != "" || m.ID != "" {
			start := len(hdrs)
			add := func(key, value string) {
				vs := len(hdrArena)
				hdrArena = append(hdrArena, value...)
				hdrs = append(hdrs, kafka.Header{Key: key, Value: hdrArena[vs:len(hdrArena):len(hdrArena)]})
			}
			for _, h := range m.Headers {
				if m.ReplyTo != "" && h.Key == driver.HeaderReplyTo || m.ID != "" && h.Key == driver.HeaderMessageID {
					continue // ReplyTo and ID win
				}
				add(h.Key, h.Value)
			}
			if m.ReplyTo != "" {
				add(driver.HeaderReplyTo, m.ReplyTo)
			}
			if m.ID != "" {
				add(driver.HeaderMessageID, m.ID)
			}
			km.Headers = hdrs[start:len(hdrs):len(hdrs)]
		}
		out = append(out, km)
		if indexes != nil {
			indexes = append(indexes, i)
		}
	}

	if len(out) > 0 {
		err := t.write(ctx, out)
		var werrs kafka.WriteErrors
		if err == nil || errors.As(err, &werrs) {
			// Every batch has completed: the slots are final.
			reportStored(msgs, slots)
		}
		if err != nil {
			switch {
			case len(werrs) == len(out):
				for j, werr := range werrs {
					if werr == nil {
						continue
					}
					i := j
					if indexes != nil {
						i = indexes[j]
					}
					fail(i, publishError(msgs[i].Destination, werr))
				}
			case len(msgs) == 1:
				return publishError(msgs[0].Destination, err)
			default:
				// The whole call failed before or while writing (cancelled
				// ctx, message too large, closed writer): every message
				// not already failed failed with it.
				for j := range out {
					i := j
					if indexes != nil {
						i = indexes[j]
					}
					fail(i, publishError(msgs[i].Destination, err))
				}
			}
		}
	}
	if errs == nil {
		return nil
	}
	if len(msgs) == 1 {
		return errs[0]
	}
	return errs
}

// reportStored tells the caller where the broker stored each message it
// accepted (driver.Delivery.Stored).
func reportStored(msgs []*broker.Message, slots []writeSlot) {
	for i, s := range slots {
		if s.stored {
			d := &msgs[i].Delivery
			d.Partition, d.Offset, d.Stored = s.partition, s.offset, true
		}
	}
}

// write is the writer's WriteMessages, waiting for a topic that its
// metadata does not know yet (see awaitTopic). Such a metadata error fails
// the whole call before anything is written, so trying again is safe; a
// produce that failed, in part or in full, returns kafka.WriteErrors, which
// is never tried again.
//
// Publishes to one topic are coalesced with the concurrent publishes to the
// same topic (see coalescer); a publish to several topics is written on its
// own.
func (t *Transport) write(ctx context.Context, msgs []kafka.Message) error {
	for i := 1; i < len(msgs); i++ {
		if msgs[i].Topic != msgs[0].Topic {
			return t.writeDirect(ctx, msgs)
		}
	}
	return t.writes.write(ctx, msgs)
}

// writeDirect is write without coalescing.
func (t *Transport) writeDirect(ctx context.Context, msgs []kafka.Message) error {
	return t.awaitTopic(ctx, func() error { return t.writer.WriteMessages(ctx, msgs...) })
}

// writeMessages is the writer's WriteMessages.
func (t *Transport) writeMessages(ctx context.Context, msgs []kafka.Message) error {
	return t.writer.WriteMessages(ctx, msgs...)
}

func publishError(topic string, err error) error {
	if errors.Is(err, io.ErrClosedPipe) {
		return fmt.Errorf("kafkabroker: publish %s: %w", topic, broker.ErrClosed)
	}
	return fmt.Errorf("kafkabroker: publish %s: %w", topic, err)
}

// arenaSize returns the bytes of all keys and of all bodies, and the
// number of headers, of msgs.
func arenaSize(msgs []*broker.Message) (keys, values, headers int) {
	for _, m := range msgs {
		keys += len(m.Key)
		values += len(m.Body)
		headers += len(m.Headers)
		if m.ReplyTo != "" {
			headers++
		}
		if m.ID != "" {
			headers++
		}
	}
	return keys, values, headers
}

func headerSize(msgs []*broker.Message) int {
	n := 0
	for _, m := range msgs {
		for _, h := range m.Headers {
			n += len(h.Value)
		}
		n += len(m.ReplyTo) + len(m.ID)
	}
	return n
}

// copyInto appends b to arena and returns the copy, nil staying nil so that
// null keys and tombstones survive.
func copyInto(arena, b []byte) ([]byte, []byte) {
	if b == nil {
		return nil, arena
	}
	start := len(arena)
	arena = append(arena, b...)
	return arena[start:len(arena):len(arena)], arena
}

// ensureTopic creates topic once per transport when WithAutoCreateTopics is
// set and the topic is missing.
func (t *Transport) ensureTopic(ctx context.Context, topic string) error {
	if _, ok := t.created.Load(topic); ok {
		return nil
	}
	res, err := t.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{
			Topic:             topic,
			NumPartitions:     t.cfg.createPartitions,
			ReplicationFactor: t.cfg.createReplication,
		}},
	})
	if err != nil {
		return fmt.Errorf("kafkabroker: create topic %s: %w", topic, err)
	}
	if terr := res.Errors[topic]; terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
		return fmt.Errorf("kafkabroker: create topic %s: %w", topic, terr)
	}
	t.created.Store(topic, struct{}{})
	return nil
}
