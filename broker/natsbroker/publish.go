package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tracebus/tracebus/broker"
)

// Publish sends msgs in order.
//
// On a core NATS subject a message is handed to the connection, which sends
// it asynchronously, as nats.go's Publish does; a batch is flushed before
// Publish returns, so that its errors are known. On a JetStream subject
// Publish waits for the stream's acknowledgement; a batch is published
// asynchronously and every acknowledgement awaited. Per-message failures of
// a batch are reported as a broker.BatchError.
//
// Headers are written with their keys exactly as given; Message.ID becomes
// the Nats-Msg-Id header (JetStream de-duplication); Message.ReplyTo is the
// reply subject of a core publish; a JetStream publish, whose reply subject
// is JetStream's own, carries it in the driver.HeaderReplyTo header.
// Message.Key and Message.Partition have no meaning in NATS and are
// ignored.
func (t *Transport) Publish(ctx context.Context, msgs []*broker.Message) error {
	if err := t.usable(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(msgs) == 1 {
		return t.publishOne(ctx, msgs[0])
	}
	return t.publishBatch(ctx, msgs)
}

// smallHeader is the most header keys a core publish keeps on its stack.
const smallHeader = 8

func (t *Transport) natsMsg(m *broker.Message) natsgo.Msg {
	return natsgo.Msg{
		Subject: m.Destination,
		Reply:   m.ReplyTo,
		Header:  natsHeader(m.Headers, m.ID, t.dropHeader),
		Data:    m.Body,
	}
}

func (t *Transport) publishOne(ctx context.Context, m *broker.Message) error {
	if !t.jetStreamFor(m.Destination) {
		// nats.go keeps neither the message nor its header, so both can
		// stay on the stack when the header is small.
		nm := natsgo.Msg{Subject: m.Destination, Reply: m.ReplyTo, Data: m.Body}
		n := len(m.Headers)
		if m.ID != "" {
			n++
		}
		if n > 0 && n <= smallHeader {
			nm.Header = make(natsgo.Header, smallHeader)
			fillNATSHeader(nm.Header, n, m.Headers, m.ID, t.dropHeader)
		} else {
			nm.Header = natsHeader(m.Headers, m.ID, t.dropHeader)
		}
		if err := t.nc.PublishMsg(&nm); err != nil {
			return fmt.Errorf("natsbroker: publish to %s: %w", m.Destination, err)
		}
		return nil
	}
	if err := t.ensureStreams(ctx); err != nil {
		return err
	}
	nm := t.natsMsg(m)
	replyToHeader(&nm)
	ack, err := t.js.PublishMsg(ctx, &nm)
	if err != nil {
		return jetStreamPublishError(m.Destination, err)
	}
	t.checkDuplicate(ctx, m, ack)
	return nil
}

// checkDuplicate logs a JetStream publish that the stream dropped as a
// duplicate of a message it already holds with the same Nats-Msg-Id. That
// is the point of the id when a publish is retried, but it loses a message
// when a Message was reused for new content with its ID still set (the
// broker writes a generated ID into the Message), so it is not silent.
func (t *Transport) checkDuplicate(ctx context.Context, m *broker.Message, ack *jetstream.PubAck) {
	if ack == nil || !ack.Duplicate {
		return
	}
	t.cfg.logger.LogAttrs(ctx, slog.LevelWarn,
		"natsbroker: the stream already holds a message with this id and dropped this one as a duplicate "+
			"(expected for a retried publish; a Message reused for new content needs a new ID)",
		slog.String("destination", m.Destination),
		slog.String("stream", ack.Stream),
		slog.String("message_id", capID(m.ID)))
}

func (t *Transport) publishBatch(ctx context.Context, msgs []*broker.Message) error {
	errs := make(broker.BatchError, len(msgs))
	var futures []jetstream.PubAckFuture // aligned with msgs when any
	core := false
	for i, m := range msgs {
		nm := t.natsMsg(m)
		if !t.jetStreamFor(m.Destination) {
			core = true
			if err := t.nc.PublishMsg(&nm); err != nil {
				errs[i] = fmt.Errorf("natsbroker: publish to %s: %w", m.Destination, err)
			}
			continue
		}
		if err := t.ensureStreams(ctx); err != nil {
			errs[i] = err
			continue
		}
		if futures == nil {
			futures = make([]jetstream.PubAckFuture, len(msgs))
		}
		replyToHeader(&nm)
		f, err := t.js.PublishMsgAsync(&nm)
		if err != nil {
			errs[i] = fmt.Errorf("natsbroker: publish to %s: %w", m.Destination, err)
			continue
		}
		futures[i] = f
	}
	if core {
		// A core publish only fails locally; the flush tells whether the
		// server received the batch.
		if err := flush(ctx, t.nc); err != nil {
			for i, m := range msgs {
				if errs[i] == nil && (futures == nil || futures[i] == nil) {
					errs[i] = fmt.Errorf("natsbroker: publish to %s: flush: %w", m.Destination, err)
				}
			}
		}
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			t.checkDuplicate(ctx, msgs[i], ack)
		case err := <-f.Err():
			errs[i] = jetStreamPublishError(msgs[i].Destination, err)
		case <-ctx.Done():
			errs[i] = fmt.Errorf("natsbroker: publish to %s: awaiting acknowledgement: %w", msgs[i].Destination, ctx.Err())
		}
	}
	for _, err := range errs {
		if err != nil {
			return errs
		}
	}
	return nil
}

// jetStreamPublishError wraps the error of a JetStream publish. Two
// answers mean that no server can store the message for now, and then the
// error also matches broker.ErrUnavailable and says so, since nats.go's own
// text tells the user neither why nor that a later retry may succeed:
//   - no answer at all (no responders): no server leads the stream (a
//     replicated stream without quorum, or electing a leader); the message
//     was not stored;
//   - no acknowledgement before the deadline: the stream's leader may have
//     lost its quorum and cannot commit; the message may have been stored,
//     so a retry should keep Message.ID, which lets the stream drop the
//     duplicate.
func jetStreamPublishError(subject string, err error) error {
	switch {
	case errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, natsgo.ErrNoResponders):
		return fmt.Errorf("natsbroker: publish to %s: %w: no stream leader answered (a replicated stream without quorum, or electing a leader); the message was not stored, retry later: %w",
			subject, broker.ErrUnavailable, err)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, natsgo.ErrTimeout):
		return fmt.Errorf("natsbroker: publish to %s: %w: no acknowledgement from the stream in time (a replicated stream without quorum, or an overloaded server); the message may have been stored, retry with the same Message.ID: %w",
			subject, broker.ErrUnavailable, err)
	}
	return fmt.Errorf("natsbroker: publish to %s: %w", subject, err)
}
