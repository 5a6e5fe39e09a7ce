package memory

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/internal/subject"
	"github.com/tracebus/tracebus/broker/internal/subopt"
	"github.com/tracebus/tracebus/internal/foreignopt"
)

// system is the messaging.system value the memory transport reports.
const system = "memory"

// Server is an in-process message broker. Transports connected to the same
// Server see each other's messages, share groups, and are closed
// independently, like connections to a real broker. It is safe for
// concurrent use.
type Server struct {
	cfg serverConfig

	mu        sync.Mutex
	subs      []*subscription
	groups    map[groupKey]*group
	ordered   []*group // groups in creation order, so routing is deterministic
	seq       map[string]uint64
	published []*broker.Message // with WithRecording, every message in publish order
	// inboxes are the reply inboxes of the brokers using the server, by
	// subject prefix.
	inboxes map[string]*inbox
}

// Transport is one connection to a Server; it implements driver.Transport.
// It is safe for concurrent use.
type Transport struct {
	srv    *Server
	mu     sync.Mutex
	closed bool
}

var (
	_ driver.Transport          = (*Transport)(nil)
	_ driver.SharedDestinations = (*Transport)(nil)
	_ driver.Puller             = (*Transport)(nil)
)

type groupKey struct{ pattern, name string }

// group shares messages between its members round-robin.
type group struct {
	key     groupKey
	members []*subscription
	next    int
}

// NewServer returns an empty in-process broker. By default it delivers
// asynchronously and keeps nothing; see WithSyncDelivery and WithRecording.
func NewServer(opts ...ServerOption) *Server {
	srv := &Server{groups: map[groupKey]*group{}, seq: map[string]uint64{}}
	for _, o := range opts {
		if o != nil {
			o.applyServer(&srv.cfg)
		}
	}
	return srv
}

// Option configures a Transport. A nil Option is ignored.
type Option interface {
	apply(*config)
}

type config struct {
	srv *Server
	err error
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithServer connects the transport to srv, so that it shares messages and
// groups with the other transports connected to srv. Without it, New
// connects the transport to a new Server of its own.
func WithServer(srv *Server) Option {
	return optionFunc(func(c *config) {
		if srv == nil {
			c.err = fmt.Errorf("memory: nil server: %w", broker.ErrInvalid)
			return
		}
		c.srv = srv
	})
}

// New returns a transport connected to the Server given with WithServer,
// or to a new Server of its own. Like every transport constructor it
// fails only on invalid options, with an error wrapping
// broker.ErrInvalid. A nil Option is ignored.
func New(opts ...Option) (*Transport, error) {
	var c config
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if c.err != nil {
		return nil, c.err
	}
	if c.srv == nil {
		c.srv = NewServer()
	}
	return &Transport{srv: c.srv}, nil
}

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// SharesDestinations implements driver.SharedDestinations: the
// transports connected to one Server reach the same destinations.
func (t *Transport) SharesDestinations(other driver.Transport) bool {
	o, ok := other.(*Transport)
	return ok && o.srv == t.srv
}

// Info implements driver.Transport.
func (t *Transport) Info() driver.Info {
	return driver.Info{System: system, TemporaryPrefix: inboxPrefix}
}

// Publish implements driver.Transport: each message is copied and queued for
// every matching subscription (one member per group) before Publish returns.
// On a server made WithSyncDelivery, Publish instead hands the messages to
// the matching handlers itself and returns once they, and whatever they
// published in turn, have finished.
func (t *Transport) Publish(ctx context.Context, msgs []*broker.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if t.isClosed() {
		return broker.ErrClosed
	}
	srv := t.srv
	if srv.cfg.sync {
		return srv.publishSync(ctx, msgs)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	now := time.Now()
	for _, m := range msgs {
		c := srv.accept(m, now)
		srv.dispatch(c, func(s *subscription) { s.enqueue(c) })
	}
	return nil
}

// accept makes the server's own copy of m, numbered in its destination's
// sequence, and records it when the server records. srv.mu must be held.
func (srv *Server) accept(m *broker.Message, now time.Time) *broker.Message {
	srv.seq[m.Destination]++
	c := &broker.Message{
		Destination: m.Destination,
		Key:         bytes.Clone(m.Key),
		Body:        bytes.Clone(m.Body),
		Headers:     m.Headers.Clone(),
		ID:          m.ID,
		ReplyTo:     m.ReplyTo,
		Delivery: driver.Delivery{
			Sequence:  srv.seq[m.Destination],
			Timestamp: now,
		},
	}
	if m.Partition != nil {
		c.Delivery.Partition = *m.Partition
	}
	if srv.cfg.record {
		srv.published = append(srv.published, c)
	}
	return c
}

// route calls to for every subscription a message published to dest goes
// to: each subscription of its own, in the order they were made, then one
// member of each group, chosen round-robin, groups in the order they were
// formed. srv.mu must be held.
func (srv *Server) route(dest string, to func(*subscription)) {
	for _, s := range srv.subs {
		if subject.Match(s.spec.Destination, dest) {
			to(s)
		}
	}
	for _, g := range srv.ordered {
		if subject.Match(g.key.pattern, dest) && len(g.members) > 0 {
			g.next = (g.next + 1) % len(g.members)
			to(g.members[g.next])
		}
	}
}

// ValidateSubscription implements driver.Transport. The memory
// transport defines no options of its own, so it rejects every transport
// option, except under the test harness (testutil.NewHarness), which
// checks the options of other transports and ignores them.
func (t *Transport) ValidateSubscription(spec driver.SubscriptionSpec) error {
	if check := foreignopt.For(t); check != nil {
		var own, foreign []driver.TransportOption
		for _, o := range spec.TransportOptions {
			if o.TransportName() == system {
				own = append(own, o)
			} else {
				foreign = append(foreign, o)
			}
		}
		if len(foreign) > 0 {
			if err := check(spec, foreign); err != nil {
				return err
			}
			spec.TransportOptions = own
		}
	}
	var none struct{} // the memory transport has no options of its own
	return subopt.Apply("memory", system, &spec, &none)
}

// Subscribe implements driver.Transport.
func (t *Transport) Subscribe(ctx context.Context, spec driver.SubscriptionSpec, deliver driver.DeliverFunc) (driver.Subscription, error) {
	if err := t.ValidateSubscription(spec); err != nil {
		return nil, err
	}
	if t.isClosed() {
		return nil, broker.ErrClosed
	}
	s := newSubscription(t.srv, ctx, spec, deliver)
	t.register(s)
	s.start()
	return s, nil
}

// register makes s receive what is published to its destination, alone or
// as a member of its group.
func (t *Transport) register(s *subscription) {
	spec, srv := s.spec, t.srv
	srv.mu.Lock()
	if spec.Group == "" {
		srv.subs = append(srv.subs, s)
	} else {
		k := groupKey{spec.Destination, spec.Group}
		g := srv.groups[k]
		if g == nil {
			g = &group{key: k}
			srv.groups[k] = g
			srv.ordered = append(srv.ordered, g)
		}
		g.members = append(g.members, s)
	}
	srv.mu.Unlock()
}

// remove takes s out of routing; it receives no new messages afterwards.
func (srv *Server) remove(s *subscription) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if s.spec.Group == "" {
		srv.subs = deleteSub(srv.subs, s)
		return
	}
	k := groupKey{s.spec.Destination, s.spec.Group}
	if g := srv.groups[k]; g != nil {
		g.members = deleteSub(g.members, s)
		if len(g.members) == 0 {
			delete(srv.groups, k)
			srv.ordered = slices.DeleteFunc(srv.ordered, func(x *group) bool { return x == g })
		}
	}
}

// requeue routes a message that asked for redelivery: back to s, or to
// another member of s's group when s has been closed meanwhile.
func (srv *Server) requeue(s *subscription, m *broker.Message) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	// Enqueued with srv.mu held: the member chosen cannot leave the group
	// (and drop what it has not taken) in between.
	srv.redeliveryTarget(s).enqueue(m)
}

// redeliveryTarget is the subscription a message of s goes to when it is
// delivered again: the next member of s's group, or s itself when it has
// no group or the group has no member left. srv.mu must be held.
func (srv *Server) redeliveryTarget(s *subscription) *subscription {
	if s.spec.Group != "" {
		if g := srv.groups[groupKey{s.spec.Destination, s.spec.Group}]; g != nil && len(g.members) > 0 {
			g.next = (g.next + 1) % len(g.members)
			return g.members[g.next]
		}
	}
	return s
}

// Close implements driver.Transport: publishing and subscribing through t
// fail with broker.ErrClosed afterwards. The broker closes its
// subscriptions before it closes the transport.
func (t *Transport) Close(context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	return nil
}

func deleteSub(list []*subscription, s *subscription) []*subscription {
	for i, x := range list {
		if x == s {
			return append(list[:i:i], list[i+1:]...)
		}
	}
	return list
}
