package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/tracebus/tracebus/broker/codec"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/internal/replyid"
)

// Errors of request/reply. Match them with errors.Is.
var (
	// ErrNoResponders: the system knows that nobody subscribes to the
	// request's destination (NATS, memory). Kafka cannot know: a request
	// nobody answers times out.
	ErrNoResponders = errors.New("tracebus: no responders")
	// ErrRemote is matched by every *ReplyError: the replier answered
	// with an error.
	ErrRemote = errors.New("tracebus: error reply")
)

// ReplyError is the error Request returns when the replier answered with
// an error reply. It matches ErrRemote.
//
// A handler may also return (or give to ReplyError) a *ReplyError itself
// to answer with a chosen type and text: such an error is an answer, so it
// is sent as it is and the request message is acknowledged.
type ReplyError struct {
	// Type is the low-cardinality type of the error: "decode",
	// "validation", "panic", the ErrorType() string of the replier's own
	// error type, or "_OTHER". It is at
	// most 64 characters of [A-Za-z0-9_.-].
	Type string
	// Message is the error's text when the replier chose to send it
	// (ExposeErrors, or a *ReplyError returned by the handler); otherwise
	// empty. At most 1024 bytes are kept.
	Message string
}

// Error implements error.
func (e *ReplyError) Error() string {
	if e.Message == "" {
		return "tracebus: error reply: " + e.Type
	}
	return "tracebus: error reply: " + e.Type + ": " + e.Message
}

// Is reports ErrRemote as a match.
func (e *ReplyError) Is(target error) bool { return target == ErrRemote }

// Limits on what an error reply carries, both ways: a replier cannot make
// a requester hold more, and a requester's telemetry keeps low cardinality.
const (
	maxReplyErrorType = 64
	maxReplyErrorText = 1024
)

// RequestStats describes the requests of a broker.
type RequestStats struct {
	// Pending is the number of requests waiting for their reply.
	Pending int
	// LateReplies counts the replies dropped because no request waited
	// for them: their requester gave up (deadline, cancellation) before
	// they arrived, another reply to the same request came first, or they
	// were never requested.
	LateReplies uint64
}

// RequestStats returns the broker's request statistics.
func (b *Broker) RequestStats() RequestStats {
	r := &b.requests
	r.mu.Lock()
	defer r.mu.Unlock()
	return RequestStats{Pending: len(r.pending), LateReplies: r.late.Load()}
}

// requests matches replies to the requests waiting for them: one inbox per
// broker, one channel per request.
type requests struct {
	openMu sync.Mutex // held while the inbox opens, which may take a round trip

	mu      sync.Mutex
	inbox   driver.Inbox
	closed  bool
	done    chan struct{} // closed with the broker
	pending map[string]chan inboxReply
	prefix  string
	seq     atomic.Uint64
	late    atomic.Uint64
}

type inboxReply struct {
	msg *Message
	err error
}

// open returns the broker's inbox, opening it on first use. A failure is
// returned and tried again by the next request.
func (r *requests) open(ctx context.Context, b *Broker, rt driver.Transport) (driver.Inbox, error) {
	if in, err := r.current(); in != nil || err != nil {
		return in, err
	}
	r.openMu.Lock()
	defer r.openMu.Unlock()
	if in, err := r.current(); in != nil || err != nil {
		return in, err
	}
	in, err := rt.OpenInbox(ctx, func(id string, reply *Message, err error) { r.deliver(b, id, reply, err) })
	if err != nil {
		return nil, fmt.Errorf("tracebus: open reply inbox: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		// The broker closed while the inbox was opening.
		_ = in.Close(ctx)
		return nil, ErrClosed
	}
	r.inbox = in
	return in, nil
}

// current returns the open inbox, ErrClosed, or neither when the inbox is
// still to be opened; it prepares what the inbox delivers into.
func (r *requests) current() (driver.Inbox, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if r.done == nil {
		r.done = make(chan struct{})
		r.pending = make(map[string]chan inboxReply)
		var buf [8]byte
		_, _ = rand.Read(buf[:])
		r.prefix = hex.EncodeToString(buf[:])
	}
	return r.inbox, nil
}

// register adds a pending request and returns its id and channel.
func (r *requests) register() (string, chan inboxReply, error) {
	var buf [40]byte // prefix (16) and a base-36 uint64 (up to 13): one allocation, the string
	id := string(strconv.AppendUint(append(buf[:0], r.prefix...), r.seq.Add(1), 36))
	ch := make(chan inboxReply, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return "", nil, ErrClosed
	}
	r.pending[id] = ch
	return id, ch, nil
}

// unregister takes a request out of pending. A reply handed over after
// its requester stopped waiting (the reply and the deadline came at once)
// is counted as late, like one arriving afterwards.
func (r *requests) unregister(id string, ch chan inboxReply) {
	r.mu.Lock()
	delete(r.pending, id)
	r.mu.Unlock()
	// No delivery reaches ch after the delete: deliver looks it up under
	// r.mu.
	select {
	case <-ch:
		r.late.Add(1)
	default:
	}
}

// deliver hands a reply to the request waiting for it, or counts it as
// late. It never blocks: each request's channel has room for its one reply,
// and the request is taken out of pending when the reply is handed over.
func (r *requests) deliver(b *Broker, id string, reply *Message, err error) {
	r.mu.Lock()
	ch, ok := r.pending[id]
	if ok {
		delete(r.pending, id)
	}
	r.mu.Unlock()
	if !ok {
		r.late.Add(1)
		b.cfg.logger.LogAttrs(context.Background(), slog.LevelDebug, "tracebus: reply without a waiting request dropped",
			slog.String("correlation_id", truncate(id, 64)))
		return
	}
	ch <- inboxReply{msg: reply, err: err}
}

// close fails the pending requests with ErrClosed and closes the inbox.
func (r *requests) close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	if r.done != nil {
		close(r.done)
	}
	in := r.inbox
	r.mu.Unlock()
	if in == nil {
		return nil
	}
	if err := in.Close(ctx); err != nil {
		return fmt.Errorf("tracebus: close reply inbox: %w", err)
	}
	return nil
}

// Request sends msg to msg.Destination and waits for its reply, which it
// returns. ctx must have a deadline (errNoDeadline otherwise): when it
// expires or ctx is cancelled first, Request returns an error wrapping
// ctx.Err(), and a reply arriving later is dropped and counted in
// RequestStats().LateReplies, never handed to another request.
//
// Request sets msg.ReplyTo to an address of the broker's reply inbox (a
// NATS "_INBOX." subject, the broker's Kafka reply topic) and the
// driver.HeaderCorrelationID header, unless the caller set one: a
// correlation id of the caller's reaches the replier and comes back on the
// reply as it was sent, while the reply is matched to its request by the
// broker's own id (the reply address's token, or a header of its own where
// the system has no reply subjects), so that two requests in flight with
// the same caller id each get their own reply. The replier answers with Reply, ReplyError
// or a HandleResult handler. An error reply is returned as a *ReplyError
// (matching ErrRemote). When the system knows that nobody listens (NATS,
// memory), the error wraps ErrNoResponders.
//
// The whole round trip runs through the broker's middleware as one
// OpRequest operation around the OpPublish of msg, and the reply's receipt
// as an OpConsume of a temporary destination; with telemetry, the replier's
// spans and the reply's are in the request's trace.
//
// The transport must implement ReplyTransport (memory, NATS and Kafka do);
// otherwise Request fails with errors.ErrUnsupported.
func (b *Broker) Request(ctx context.Context, msg *Message) (*Message, error) {
	return b.request(ctx, msg, "", nil)
}

// request is Request; receive, when not nil, runs on the reply inside its
// receipt's consume chain (the typed layer decodes there, so that the
// receipt's process span covers decoding). template, when not empty, is
// the destination template msg's destination was filled from.
func (b *Broker) request(ctx context.Context, msg *Message, template string, receive func(ctx context.Context, reply *Message) error) (*Message, error) {
	if msg == nil {
		return nil, errNilMessage
	}
	dest := msg.Destination
	if dest == "" {
		return nil, errEmptyDestination
	}
	if b.state.Load() == stateClosed {
		return nil, ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok {
		return nil, fmt.Errorf("tracebus: request to %s: %w", dest, errNoDeadline)
	}
	inbox, err := b.requests.open(ctx, b, b.transport)
	if err != nil {
		return nil, err
	}
	id, ch, err := b.requests.register()
	if err != nil {
		return nil, err
	}
	defer b.requests.unregister(id, ch)
	msg.ReplyTo = inbox.ReplyTo(id)
	// A correlation id the caller set is the caller's: it travels to the
	// replier and back untouched. Replies are matched by the broker's own
	// id only, the reply address's token or, where the system has no reply
	// subjects (Kafka), the replyid header, so that no caller id can make
	// one request take another's reply.
	if own, _ := msg.Headers.Lookup(driver.HeaderCorrelationID); own != "" {
		msg.Headers.Set(replyid.Header, id)
	} else {
		msg.Headers.Set(driver.HeaderCorrelationID, id)
		msg.Headers.Del(replyid.Header)
	}

	op := b.publishOperation(dest, false)
	op.Template = template
	var reply *Message
	roundTrip := func(ctx context.Context, rop driver.Operation, msgs []*Message) error {
		send := rop
		send.Kind = driver.OpPublish
		if err := b.publish(ctx, send, msgs); err != nil {
			return err
		}
		var r inboxReply
		select {
		case r = <-ch:
		case <-ctx.Done():
			return fmt.Errorf("tracebus: request to %s: no reply: %w", dest, ctx.Err())
		case <-b.requests.done:
			return fmt.Errorf("tracebus: request to %s: %w", dest, ErrClosed)
		}
		if r.err != nil {
			return fmt.Errorf("tracebus: request to %s: %w", dest, r.err)
		}
		reply = r.msg
		return b.receiveReply(ctx, rop, reply, receive)
	}
	op.Kind = driver.OpRequest
	err = chainPublish(b.cfg.middleware, roundTrip)(ctx, op, []*Message{msg})
	if err != nil {
		return nil, err
	}
	return reply, nil
}

// receiveReply runs the receipt of reply through the consume middleware,
// calling receive inside it, and turns an error reply into a *ReplyError.
func (b *Broker) receiveReply(ctx context.Context, rop driver.Operation, reply *Message, receive func(context.Context, *Message) error) error {
	op := rop
	op.Kind = driver.OpConsume
	op.Destination = reply.Destination
	op.Template = "" // the request's, not the reply address's
	// The reply address is the requester's own: temporary by nature, even
	// where the system has no such notion (a Kafka reply topic).
	op.Temporary = true
	if reply.Delivery.Subscription == "" {
		reply.Delivery.Subscription = reply.Destination
	}
	if reply.Delivery.DeliveryCount == 0 {
		reply.Delivery.DeliveryCount = 1
	}
	var remote *ReplyError
	err := chainConsume(b.cfg.middleware, func(ctx context.Context, _ driver.Operation, msgs []*Message) error {
		if typ, ok := msgs[0].Headers.Lookup(driver.HeaderReplyError); ok {
			remote = &ReplyError{Type: sanitizeErrorType(typ), Message: truncate(string(msgs[0].Body), maxReplyErrorText)}
			return nil
		}
		if receive == nil {
			return nil
		}
		return receive(ctx, msgs[0])
	})(ctx, op, []*Message{reply})
	if err != nil {
		return err
	}
	if remote != nil {
		return remote
	}
	return nil
}

// Reply sends reply to the reply address of req, a message a handler got:
// it sets reply.Destination and copies req's correlation id and the
// broker's id the reply is matched by, over any reply.Headers held. With the
// handler's ctx, the reply continues the handler's trace. The publish goes
// through the broker's middleware like any other, marked as a temporary
// destination, so that the reply address never appears in span names.
//
// A byte-level handler answers a request with Reply (and ReplyError);
// HandleResult handlers reply with their return value by themselves.
func (b *Broker) Reply(ctx context.Context, req, reply *Message) error {
	if req == nil || reply == nil {
		return errNilMessage
	}
	if req.ReplyTo == "" {
		return errNoReplyAddress
	}
	if b.state.Load() == stateClosed {
		return ErrClosed
	}
	reply.Destination = req.ReplyTo
	if p, ok := b.transport.(driver.ReplyPreparer); ok {
		if err := p.PrepareReply(ctx, req.ReplyTo); err != nil {
			return fmt.Errorf("tracebus: reply: %w", err)
		}
	}
	if id, ok := req.Headers.Lookup(driver.HeaderCorrelationID); ok {
		reply.Headers.Set(driver.HeaderCorrelationID, id)
	}
	if id, ok := req.Headers.Lookup(replyid.Header); ok {
		reply.Headers.Set(replyid.Header, id)
	} else {
		reply.Headers.Del(replyid.Header)
	}
	op := b.publishOperation(reply.Destination, false)
	op.Temporary = true
	if err := b.publish(ctx, op, []*Message{reply}); err != nil {
		return fmt.Errorf("tracebus: reply: %w", err)
	}
	return nil
}

// ReplyError answers req with an error reply for err, which the requester
// gets as a *ReplyError. Only err's type is sent ("decode", "validation",
// "panic", the value of an ErrorType() string method in its chain, else
// "_OTHER"), never its text, unless err is or wraps a *ReplyError:
// that one is sent as it is, text included, because the replier built it
// to be seen.
func (b *Broker) ReplyError(ctx context.Context, req *Message, err error) error {
	return b.Reply(ctx, req, errorReply(err, false))
}

// errorReply builds the error reply for err; expose sends its text too.
func errorReply(err error, expose bool) *Message {
	var typ, text string
	if re, ok := errors.AsType[*ReplyError](err); ok {
		typ, text = re.Type, re.Message
	} else {
		typ = replyErrorType(err, 0)
		if expose && err != nil {
			text = err.Error()
		}
	}
	m := &Message{Body: []byte(truncate(text, maxReplyErrorText))}
	m.Headers.Set(driver.HeaderReplyError, sanitizeErrorType(typ))
	m.Headers.Set(HeaderContentType, codec.Text.ContentType())
	return m
}

// replyErrorType names err's type for an error reply: the first error in
// its chain that is one of the broker's own or names itself with an
// ErrorType() string method.
func replyErrorType(err error, depth int) string {
	if err == nil || depth > 32 {
		return "_OTHER"
	}
	switch e := err.(type) {
	case *PanicError:
		return "panic"
	case *DecodeError:
		return "decode"
	case *ValidationError:
		return "validation"
	case interface{ ErrorType() string }:
		if s := e.ErrorType(); s != "" {
			return s
		}
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return replyErrorType(u.Unwrap(), depth+1)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if s := replyErrorType(e, depth+1); s != "_OTHER" {
				return s
			}
		}
	}
	return "_OTHER"
}

// sanitizeErrorType keeps an error type low-cardinality and safe in a
// header and a span: at most maxReplyErrorType characters of
// [A-Za-z0-9_.-], "_OTHER" when nothing is left.
func sanitizeErrorType(s string) string {
	out := make([]byte, 0, min(len(s), maxReplyErrorType))
	for i := 0; i < len(s) && len(out) < maxReplyErrorType; i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-' {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return "_OTHER"
	}
	return string(out)
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
