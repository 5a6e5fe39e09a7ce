package broker

import (
	"context"
	"slices"
	"strings"
)

// Registrar is where subscriptions and publishers are registered: a
// *Broker, or a *Router that adds a destination prefix and shared options
// before handing them to its broker. Subscribe functions of the typed layer
// (Handle, HandleBatch, HandleResult) and NewPublisher take one, so code
// that registers a group of handlers can be written once and attached to a
// broker or a router:
//
//	func Register(r broker.Registrar) error {
//		return broker.Handle(r, "created", onCreated)
//	}
//
// Only *Broker and *Router implement it.
type Registrar interface {
	routes() routes
}

// routes is what a Registrar resolves to: the broker that ends up with the
// registrations, the prefix of their destinations and the subscribe options
// they share.
type routes struct {
	b      *Broker
	prefix string
	opts   []SubscribeOption
}

func (b *Broker) routes() routes { return routes{b: b} }

// destination is dest under the prefix. An empty dest stays empty, so that
// registration fails with errEmptyDestination instead of subscribing to
// the bare prefix.
func (rt routes) destination(dest string) string {
	if rt.prefix == "" || dest == "" {
		return dest
	}
	sep := rt.b.transport.Info().Separator
	if sep == "" || strings.HasSuffix(rt.prefix, sep) {
		return rt.prefix + dest
	}
	return rt.prefix + sep + dest
}

// subConfig is Broker.subConfig for dest under the prefix, with the shared
// options before opts, so that a subscription's own options win.
func (rt routes) subConfig(dest string, batch bool, opts []SubscribeOption) subConfig {
	return rt.b.subConfig(rt.destination(dest), batch, slices.Concat(rt.opts, opts))
}

func (rt routes) subscribe(destination string, h handler, opts []SubscribeOption) error {
	if h == nil {
		return errNilHandler
	}
	cfg := rt.subConfig(destination, false, opts)
	return rt.b.add(cfg, func(ctx context.Context, msgs []*Message) error { return h(ctx, msgs[0]) })
}

func (rt routes) subscribeBatch(destination string, h batchHandler, opts []SubscribeOption) error {
	if h == nil {
		return errNilHandler
	}
	return rt.b.add(rt.subConfig(destination, true, opts), h)
}

// Router is a group of subscriptions and publishers of one broker under a
// destination prefix, sharing subscribe options and consume middleware: the
// counterpart of FastStream's include_router. Register on it with its
// Subscribe and SubscribeBatch methods, or pass it where a Registrar is
// taken (Handle, HandleBatch, HandleResult, NewPublisher, NewRouter).
//
// How the prefix joins a destination depends on the broker's transport (see
// driver.Info.Separator):
//
//   - NATS: subjects are dot-separated, so a dot is put between the prefix
//     and the destination unless the prefix ends with one: prefix "orders"
//     and "created" subscribe to "orders.created", "*" to "orders.*", ">" to
//     "orders.>".
//   - Kafka and memory: the prefix is put in front as it is: prefix
//     "orders-" and "created" make the topic "orders-created".
//
// A prefix written with its separator ("orders.") gives the same
// destinations on every transport, which matters when a service's tests run
// its wiring on the memory transport.
//
// Dead-letter destinations (DeadLetter) and reply addresses are used as
// given, without the prefix.
//
// A Router is safe for concurrent use; registering through it is
// registering on its broker, with the same rules (Subscribe after Start
// starts the subscription at once).
type Router struct {
	rt routes
}

// NewRouter returns a router under parent, a *Broker or another *Router,
// for destinations under prefix. opts apply to every subscription made
// through the router (and its nested routers), before the subscription's
// own options, which therefore win: NewRouter(b, "orders", Group("billing"),
// Use(mw), MaxAttempts(5)). Middleware given with Use wraps the consume of
// each subscription, inside the broker's middleware and outside the
// subscription's own; publishes go through the broker's middleware only.
//
// A nested router adds its prefix to its parent's: NewRouter(NewRouter(b,
// "orders"), "eu") on NATS registers "created" as "orders.eu.created". An
// empty prefix adds nothing: the router registers under its parent's
// prefix.
func NewRouter(parent Registrar, prefix string, opts ...SubscribeOption) *Router {
	p := parent.routes()
	full := p.prefix // an empty prefix keeps the parent's
	if prefix != "" {
		full = p.destination(prefix)
	}
	return &Router{rt: routes{b: p.b, prefix: full, opts: slices.Concat(p.opts, opts)}}
}

func (r *Router) routes() routes { return r.rt }

// Subscribe registers h for the messages arriving at destination under the
// router's prefix, with the router's options and then opts; see
// Broker.Subscribe.
func (r *Router) Subscribe(destination string, h func(ctx context.Context, msg *Message) error, opts ...SubscribeOption) error {
	return r.rt.subscribe(destination, h, opts)
}

// SubscribeBatch registers h for batches of messages arriving at
// destination under the router's prefix, with the router's options and then
// opts; see Broker.SubscribeBatch.
func (r *Router) SubscribeBatch(destination string, h func(ctx context.Context, msgs []*Message) error, opts ...SubscribeOption) error {
	return r.rt.subscribeBatch(destination, h, opts)
}
