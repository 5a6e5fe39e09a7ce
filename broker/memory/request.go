package memory

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
)

// inboxPrefix starts every reply address of the memory transport, as
// "_INBOX." does in NATS. Such destinations are temporary.
const inboxPrefix = "_INBOX."

// inbox is one broker's reply inbox on a Server: the subjects
// inboxPrefix+"<random>.<request id>", the broker's id of each request.
type inbox struct {
	srv     *Server
	prefix  string
	deliver driver.InboxFunc
}

// OpenInbox implements driver.Transport, with NATS semantics: a
// reply address is a subject of the inbox, the broker's id of the
// request its last token; a request published while nothing subscribes to its destination
// is answered at once with an error wrapping broker.ErrNoResponders.
func (t *Transport) OpenInbox(_ context.Context, deliver driver.InboxFunc) (driver.Inbox, error) {
	if t.isClosed() {
		return nil, broker.ErrClosed
	}
	var buf [8]byte
	_, _ = rand.Read(buf[:])
	in := &inbox{srv: t.srv, prefix: inboxPrefix + hex.EncodeToString(buf[:]) + ".", deliver: deliver}
	t.srv.mu.Lock()
	if t.srv.inboxes == nil {
		t.srv.inboxes = make(map[string]*inbox)
	}
	t.srv.inboxes[in.prefix] = in
	t.srv.mu.Unlock()
	return in, nil
}

func (in *inbox) ReplyTo(id string) string { return in.prefix + id }

func (in *inbox) Close(context.Context) error {
	in.srv.mu.Lock()
	delete(in.srv.inboxes, in.prefix)
	in.srv.mu.Unlock()
	return nil
}

// dispatch hands the accepted message m to the inbox it is addressed to,
// or else routes it to the subscriptions it goes to (see route); a request
// that no subscription gets is answered with no responders. srv.mu must be
// held; an inbox's deliver does not block.
func (srv *Server) dispatch(m *broker.Message, to func(*subscription)) {
	if in, id := srv.inboxOf(m.Destination); in != nil {
		in.deliver(id, m, nil)
		return
	}
	received := false
	srv.route(m.Destination, func(s *subscription) {
		received = true
		to(s)
	})
	if received || m.ReplyTo == "" {
		return
	}
	if in, id := srv.inboxOf(m.ReplyTo); in != nil {
		in.deliver(id, nil, fmt.Errorf("memory: nothing subscribes to %s: %w", m.Destination, broker.ErrNoResponders))
	}
}

func (srv *Server) inboxOf(subject string) (*inbox, string) {
	if len(srv.inboxes) == 0 || !strings.HasPrefix(subject, inboxPrefix) {
		return nil, ""
	}
	i := strings.LastIndexByte(subject, '.')
	in := srv.inboxes[subject[:i+1]]
	if in == nil {
		return nil, ""
	}
	return in, subject[i+1:]
}
