package broker

import (
	"context"
	"log/slog"
	"strings"
)

// messageAttributeLimit is how many bytes of a message id the broker's log
// lines carry, cut at a UTF-8 character boundary. The id comes from
// whoever sent the message: uncapped, a 64 KiB id would make every debug
// and warn line about that message 64 KiB long. The telemetry middleware
// caps the ids and keys on its spans at the same length by default
// (middleware.WithMessageAttributeLimit).
const messageAttributeLimit = 256

// messageIDAttr is the message_id attribute of a log line, capped at
// MessageAttributeLimit. A capped id is copied: the prefix alone, as a
// substring, would keep the sender's whole id alive for as long as an
// asynchronous log handler holds the record.
func messageIDAttr(id string) slog.Attr {
	capped := truncate(id, messageAttributeLimit)
	if len(capped) < len(id) {
		capped = strings.Clone(capped)
	}
	return slog.String("message_id", capped)
}

// logDelivered logs one line per message at debug level, msg being
// "tracebus: received" before the handler runs or "tracebus: processed"
// after it (with the error, if any: the outcome is logged at warn or error
// level as well). It logs with the handler's ctx, so a logger that adds
// trace ids (middleware.NewLogHandler) or the OpenTelemetry bridge ties
// the lines to the process span.
func (s *subscription) logDelivered(ctx context.Context, msg string, msgs []*Message, err error) {
	log := s.b.cfg.logger
	if !log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	for _, m := range msgs {
		attrs := make([]slog.Attr, 0, 4)
		attrs = append(attrs, slog.String("destination", m.Destination))
		attrs = s.appendMessageAttrs(attrs, m)
		if err != nil {
			attrs = append(attrs, slog.Any("error", err))
		}
		log.LogAttrs(ctx, slog.LevelDebug, msg, attrs...)
	}
}

// appendMessageAttrs appends the consumer group and the message id
// (capped), when known.
func (s *subscription) appendMessageAttrs(attrs []slog.Attr, m *Message) []slog.Attr {
	if s.op.Group != "" {
		attrs = append(attrs, slog.String("group", s.op.Group))
	}
	if m.ID != "" {
		attrs = append(attrs, messageIDAttr(m.ID))
	}
	return attrs
}

// failureLogger is the broker's logger with the group and, for a single
// message, its id, for the warn and error lines of a failed delivery.
func (s *subscription) failureLogger(msgs []*Message) *slog.Logger {
	var attrs []slog.Attr
	if len(msgs) == 1 {
		attrs = s.appendMessageAttrs(attrs, msgs[0])
	} else if s.op.Group != "" {
		attrs = append(attrs, slog.String("group", s.op.Group))
	}
	if len(attrs) == 0 {
		return s.b.cfg.logger
	}
	return slog.New(s.b.cfg.logger.Handler().WithAttrs(attrs))
}
