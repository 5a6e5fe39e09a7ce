package natsbroker

import (
	"context"
	"errors"
	"fmt"

	natsgo "github.com/nats-io/nats.go"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
)

// statusHeader and noRespondersStatus are how a NATS server says that
// nobody subscribes to a request's subject: a message without data to the
// reply subject, with the status 503 in the header.
const (
	statusHeader       = "Status"
	noRespondersStatus = "503"
)

// OpenInbox implements driver.Transport as nats.go's own request mux
// does: one subscription to "<inbox prefix><nuid>.*" per broker, each
// request replied to on its own token of it, so that a thousand requests in
// flight cost one subscription, not a thousand.
//
// A request to a subject nobody subscribes to is answered by the server
// with a no-responders status, which becomes an error wrapping both
// broker.ErrNoResponders and nats.ErrNoResponders. A request to a
// JetStream subject is stored like any message, with its reply subject in
// the driver.HeaderReplyTo header (JetStream uses the reply subject for its
// own acknowledgement); the consumer's reply goes back over core NATS, and
// no-responders cannot be detected: a request nobody consumes times out.
func (t *Transport) OpenInbox(_ context.Context, deliver driver.InboxFunc) (driver.Inbox, error) {
	if err := t.usable(); err != nil {
		return nil, err
	}
	prefix := t.nc.NewInbox() + "."
	sub, err := t.nc.Subscribe(prefix+"*", func(m *natsgo.Msg) {
		id := m.Subject[len(prefix):]
		if len(m.Data) == 0 && m.Header.Get(statusHeader) == noRespondersStatus {
			deliver(id, nil, fmt.Errorf("natsbroker: %w (%w)", broker.ErrNoResponders, natsgo.ErrNoResponders))
			return
		}
		// nats.go gives every message its own copy of the data, so the
		// body is not copied again.
		deliver(id, &broker.Message{
			Destination: m.Subject,
			Body:        m.Data,
			Headers:     brokerHeaders(m.Header),
			ID:          m.Header.Get(natsgo.MsgIdHdr),
			Delivery:    driver.Delivery{Subscription: prefix + "*", DeliveryCount: 1},
		}, nil)
	})
	if err != nil {
		return nil, fmt.Errorf("natsbroker: subscribe to the reply inbox: %w", err)
	}
	return &inbox{prefix: prefix, sub: sub}, nil
}

// inbox is a broker's reply inbox on the connection.
type inbox struct {
	prefix string
	sub    *natsgo.Subscription
}

func (in *inbox) ReplyTo(id string) string { return in.prefix + id }

func (in *inbox) Close(context.Context) error {
	if err := in.sub.Unsubscribe(); err != nil && !errors.Is(err, natsgo.ErrConnectionClosed) && !errors.Is(err, natsgo.ErrBadSubscription) {
		return fmt.Errorf("natsbroker: unsubscribe the reply inbox: %w", err)
	}
	return nil
}

// replyToHeader moves the reply subject of a message published through
// JetStream into the driver.HeaderReplyTo header: JetStream takes the reply
// subject for its acknowledgement, and a stored message keeps only its
// headers.
func replyToHeader(nm *natsgo.Msg) {
	if nm.Reply == "" {
		return
	}
	if nm.Header == nil {
		nm.Header = make(natsgo.Header, 1)
	}
	nm.Header[driver.HeaderReplyTo] = []string{nm.Reply}
	nm.Reply = ""
}
