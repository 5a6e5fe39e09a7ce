package broker

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/tracebus/tracebus/broker/driver"
)

// Filter makes a handler take only the messages fn selects, as FastStream's
// subscriber(filter=...) does. Several handlers registered on the same
// destination, group and name (Subscribe, Handle, HandleResult...), all but
// at most one with a Filter, share one subscription: one consumer on the
// transport, one process span per message. Each message goes to the first
// registered handler whose filter returns true, else to the handler without
// a filter, the default. A message no handler takes fails permanently: it
// is dead-lettered with the reason when the subscription has a DeadLetter,
// else dropped with a warning; telemetry counts it as a dead letter or a
// drop with error.type "unmatched"; a request gets an error reply of that
// type at once. It is never acknowledged unseen (except under AckFirst,
// which acknowledges every message before it is looked at).
//
// The filter picks the payload type of typed handlers: Handle[Order] and
// Handle[Refund] on one destination, each with a Filter on a header or the
// content type, decode each message into the type of the handler that
// takes it. fn runs on the delivery's goroutine before any decoding; it
// must not change the message. A panic in fn is a handler panic.
//
// The options that describe the subscription (Group, Name, Concurrency,
// MaxAttempts, RetryBackoff, DeadLetter, AckFirst, ManualAck, Use and
// transport options) must be the same for every handler of it, or
// registration fails with ErrInvalid naming the difference; Codec and the
// documentation options are each handler's own. Functions (RetryBackoff,
// middleware funcs) are compared by their code: two backoffs from one
// constructor with different values cannot be told apart, and the first
// registered handler's applies. Batch subscriptions take no
// Filter (ErrInvalid): a batch is settled as a whole, so a batch handler
// filters its messages itself. A nil fn fails with ErrInvalid.
func Filter(fn func(*Message) bool) SubscribeOption {
	return subOptionFunc(func(c *subConfig) {
		if fn == nil {
			c.invalid("nil filter")
			return
		}
		c.filter = fn
	})
}

// route is one handler of a subscription, with the filter that selects its
// messages; a nil filter marks the default handler.
type route struct {
	filter func(*Message) bool
	h      func(ctx context.Context, msgs []*Message) error
}

// dispatch runs the handler that takes msgs: the only one of an
// unfiltered subscription, or the first whose filter selects msgs[0], or
// the default.
func (s *subscription) dispatch(ctx context.Context, msgs []*Message) error {
	rs := *s.routes.Load()
	if len(rs) == 1 && rs[0].filter == nil {
		return rs[0].h(ctx, msgs)
	}
	var def func(ctx context.Context, msgs []*Message) error
	for _, r := range rs {
		if r.filter == nil {
			def = r.h
			continue
		}
		if r.filter(msgs[0]) {
			return r.h(ctx, msgs)
		}
	}
	if def != nil {
		return def(ctx, msgs)
	}
	err := error(&unmatchedError{dest: s.op.Destination})
	if msgs[0].ReplyTo != "" {
		// A request nobody here answers: the requester learns it now
		// (a *ReplyError of type "unmatched") instead of at its deadline.
		if rerr := s.b.Reply(ctx, msgs[0], errorReply(err, false)); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

// filtered reports whether some handler of s has a filter.
func (s *subscription) filtered() bool {
	return slices.ContainsFunc(*s.routes.Load(), func(r route) bool { return r.filter != nil })
}

// unmatchedError is the failure of a message that no handler of a filtered
// subscription takes. It is permanent: the same message would be refused
// again.
type unmatchedError struct{ dest string }

func (e *unmatchedError) Error() string {
	return fmt.Sprintf("tracebus: no handler of the subscription to %s takes the message: no filter selects it and there is no default handler", e.dest)
}

// Unwrap returns ErrPermanent.
func (e *unmatchedError) Unwrap() error { return ErrPermanent }

// ErrorType returns "unmatched", the error.type telemetry records.
func (e *unmatchedError) ErrorType() string { return "unmatched" }

// subscriptionKey is what makes registrations one subscription when filters
// are involved: the destination as written (a template before it became a
// pattern), the group and the name.
func (c *subConfig) subscriptionKey() [3]string {
	dest := c.spec.Destination
	if c.template != nil {
		dest = c.template.raw
	}
	return [3]string{dest, c.spec.Group, c.spec.Name}
}

// joinTarget returns the subscription of b.subs that a registration with
// cfg joins as one more handler, or nil when it makes a subscription of its
// own. A registration joins when it has a filter or the subscription it
// would share has one. b.mu is held.
func (b *Broker) joinTarget(cfg *subConfig) (*subscription, error) {
	if cfg.spec.Batch {
		return nil, nil // a batch with a filter is refused earlier
	}
	if cfg.pull {
		if cfg.filter != nil {
			return nil, fmt.Errorf("tracebus: puller %s: Filter is for handlers that share a subscription; a Puller's caller takes every message it asks for: %w",
				cfg.spec.Destination, ErrInvalid)
		}
		return nil, nil
	}
	key := cfg.subscriptionKey()
	var same []*subscription
	for _, s := range b.subs {
		if !s.cfg.spec.Batch && !s.cfg.pull && s.cfg.subscriptionKey() == key {
			same = append(same, s)
		}
	}
	if cfg.filter == nil && !slices.ContainsFunc(same, (*subscription).filtered) {
		return nil, nil // unfiltered handlers side by side, as ever
	}
	switch len(same) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, fmt.Errorf("tracebus: subscribe %s: %d subscriptions to it without filters already, so a filtered handler has none to join: %w",
			key[0], len(same), ErrInvalid)
	}
	s := same[0]
	if cfg.filter == nil && slices.ContainsFunc(*s.routes.Load(), func(r route) bool { return r.filter == nil }) {
		return nil, fmt.Errorf("tracebus: subscribe %s: the subscription has a default handler (one without a Filter) already: %w",
			key[0], ErrInvalid)
	}
	if diff := subscriptionDiff(&s.cfg, cfg); diff != "" {
		return nil, fmt.Errorf("tracebus: subscribe %s: a filtered handler shares the subscription of the handlers registered before it, whose options differ: %s: %w",
			key[0], diff, ErrInvalid)
	}
	return s, nil
}

// join adds h with cfg's filter to s. b.mu is held.
func (b *Broker) join(s *subscription, cfg subConfig, h func(ctx context.Context, msgs []*Message) error) {
	rs := append(slices.Clone(*s.routes.Load()), route{filter: cfg.filter, h: h})
	s.routes.Store(&rs)
	// The endpoints of the subscription are marked, so that documentation
	// shows one operation with each handler's message.
	key := cfg.subscriptionKey()
	for i, e := range b.endpoints {
		if e.Kind == driver.EndpointSubscriber && !e.Batch && [3]string{e.Destination, e.Group, e.Name} == key {
			b.endpoints[i].Filtered = true
		}
	}
	e := subscriberEndpoint(cfg)
	e.Filtered = true
	b.endpoints = append(b.endpoints, e)
}

// subscriptionDiff names the first option that describes the subscription
// and differs between a and b, or returns "".
func subscriptionDiff(a, b *subConfig) string {
	switch {
	case a.spec.Concurrency != b.spec.Concurrency:
		return fmt.Sprintf("Concurrency %d, before %d", b.spec.Concurrency, a.spec.Concurrency)
	case a.maxAttempts != b.maxAttempts:
		return fmt.Sprintf("MaxAttempts %d, before %d", b.maxAttempts, a.maxAttempts)
	case a.deadLetter != b.deadLetter:
		return fmt.Sprintf("DeadLetter %q, before %q", b.deadLetter, a.deadLetter)
	case a.ackMode != b.ackMode:
		return fmt.Sprintf("acknowledgement %s, before %s", b.ackMode, a.ackMode)
	case !sameFunc(a.backoff, b.backoff):
		return "RetryBackoff differs"
	case len(a.middleware) != len(b.middleware) || !slices.EqualFunc(a.middleware, b.middleware, sameValue):
		return "Use middleware differs"
	}
	an, bn := transportOptionNames(a.spec.TransportOptions), transportOptionNames(b.spec.TransportOptions)
	if !slices.Equal(an, bn) {
		return fmt.Sprintf("transport options %v, before %v", bn, an)
	}
	return ""
}

func transportOptionNames(opts []driver.TransportOption) []string {
	names := make([]string, len(opts))
	for i, o := range opts {
		names[i] = optionName(o)
	}
	return names
}

func (m ackMode) String() string {
	switch m {
	case ackFirst:
		return "AckFirst"
	case ackManual:
		return "ManualAck"
	}
	return "after the handler"
}

// sameFunc reports whether a and b are the same function: the same code.
// Two closures of one function literal count as the same, whatever they
// captured; what cannot be told apart is let through.
func sameFunc[F any](a, b F) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if va.IsNil() || vb.IsNil() {
		return va.IsNil() == vb.IsNil()
	}
	return va.Pointer() == vb.Pointer()
}

// sameValue compares two middleware values without panicking on the ones
// that Go cannot compare: functions by their code, comparable values with
// ==, others by type.
func sameValue(a, b driver.Middleware) bool {
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	if ta != tb {
		return false
	}
	if ta == nil {
		return true
	}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	switch {
	case ta.Kind() == reflect.Func:
		return va.Pointer() == vb.Pointer()
	case ta.Comparable():
		// A comparable type can still hold incomparable values (an
		// interface field): Value.Equal panics on those.
		eq := true // what cannot be told apart is let through
		func() {
			defer func() { _ = recover() }()
			eq = va.Equal(vb)
		}()
		return eq
	}
	return true
}
