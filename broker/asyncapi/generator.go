package asyncapi

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
)

// Errors returned by Build, wrapped with the endpoint they
// concern.
var (
	// ErrInvalidEndpoint reports an endpoint without a destination or with
	// an unknown kind.
	ErrInvalidEndpoint = errors.New("asyncapi: invalid endpoint")
	// ErrUnsupportedType reports a payload, key or reply type that has no
	// JSON representation (a channel, a function, a complex number).
	ErrUnsupportedType = errors.New("asyncapi: type has no JSON Schema")
)

// source is what a document is built from: one server and the endpoints
// registered on it. sourceOf makes one from a Broker; the tests write them
// by hand.
type source struct {
	// Server describes the transport the endpoints use.
	Server driver.Info
	// Endpoints are the subscriptions and publishers, in the order their
	// channels and operations should be numbered when names clash.
	Endpoints []driver.Endpoint
}

// sourceOf returns the server and the endpoints of b as they are now.
func sourceOf(b *broker.Broker) source {
	return source{Server: b.Transport().Info(), Endpoints: b.Endpoints()}
}

// Generator builds AsyncAPI documents. It holds only its options, so one
// Generator may build any number of documents, concurrently.
type Generator struct {
	cfg config
}

// New returns a Generator configured by opts.
func New(opts ...Option) *Generator {
	return &Generator{cfg: newConfig(opts)}
}

// Build returns the document of an application made of brokers: one server
// per distinct transport, and the channels and operations of every
// subscription and publisher registered on them. A broker given twice is
// described once.
func (g *Generator) Build(brokers ...*broker.Broker) (*Document, error) {
	srcs := make([]source, 0, len(brokers))
	seen := make(map[*broker.Broker]bool, len(brokers))
	for _, b := range brokers {
		if b == nil || seen[b] {
			continue
		}
		seen[b] = true
		srcs = append(srcs, sourceOf(b))
	}
	return g.buildSources(srcs...)
}

// buildSources returns the document of the given sources. Sources with the
// same system, address and port share one server.
func (g *Generator) buildSources(sources ...source) (*Document, error) {
	bd := newBuilder(g.cfg)
	for _, src := range sources {
		srv := bd.server(src.Server)
		for _, e := range src.Endpoints {
			if err := bd.endpoint(srv, e); err != nil {
				return nil, fmt.Errorf("asyncapi: %s %q: %w", e.Kind, e.Destination, err)
			}
		}
	}
	return bd.document(), nil
}

// builder assembles one document; identifiers are numbered in the order
// things are added, so the same sources give the same document.
type builder struct {
	doc     *Document
	schemas *schemas
	headers []byte // reference to the propagation headers schema, or nil
	// contentHeaders names the headers schema of each content type.
	contentHeaders map[string]string
	servers        map[serverKey]*serverRef
	channels       map[channelKey]string
	messages       map[string][]*messageEntry // per channel id, in order
	// filtered holds the receive operation of each filtered subscription
	// (see driver.Endpoint.Filtered): its handlers are one operation.
	filtered map[filteredKey]*Operation
}

type filteredKey struct{ server, channel, group, name string }

type serverKey struct{ system, host string }

type serverRef struct {
	id     string
	system string
	info   driver.Info
}

type channelKey struct {
	server, destination string
	pattern, reply      bool
}

type messageEntry struct {
	id           string
	payload, key reflect.Type
	contentType  string
}

func newBuilder(cfg config) *builder {
	bd := &builder{
		doc: &Document{
			AsyncAPI: Version,
			Info:     cfg.info,
		},
		schemas:        newSchemas(),
		servers:        map[serverKey]*serverRef{},
		channels:       map[channelKey]string{},
		contentHeaders: map[string]string{},
		messages:       map[string][]*messageEntry{},
		filtered:       map[filteredKey]*Operation{},
	}
	if h := headersSchema(cfg.propagator); h != nil {
		bd.schemas.reserve(headersSchemaName, h)
		bd.headers = []byte(`{"$ref":"` + schemaRefPrefix + headersSchemaName + `"}`)
	}
	return bd
}

func (bd *builder) document() *Document {
	if len(bd.schemas.defs) > 0 {
		bd.doc.Components = &Components{Schemas: bd.schemas.defs}
	}
	return bd.doc
}

func (bd *builder) endpoint(srv *serverRef, e driver.Endpoint) error {
	if e.Undocumented {
		return nil
	}
	if e.Destination == "" {
		return fmt.Errorf("%w: empty destination", ErrInvalidEndpoint)
	}
	var action string
	switch e.Kind {
	case driver.EndpointSubscriber:
		action = "receive"
	case driver.EndpointPublisher:
		action = "send"
	default:
		return fmt.Errorf("%w: kind %d", ErrInvalidEndpoint, e.Kind)
	}
	ch := bd.channel(srv, e.Destination, e.Pattern, false)
	if c := bd.doc.Channels[ch]; c.Title == "" {
		c.Title = e.ChannelTitle
	}
	if c := bd.doc.Channels[ch]; c.Description == "" {
		c.Description = e.ChannelDescription
	}
	if c := bd.doc.Channels[ch]; c.Description == "" && e.Pattern {
		c.Description = patternDescription(srv.system, e.Destination)
	}
	msg, err := bd.message(srv, ch, e.Payload, e.ContentType, e.Key)
	if err != nil {
		return err
	}
	var fk filteredKey
	if e.Filtered && e.Kind == driver.EndpointSubscriber {
		fk = filteredKey{srv.id, ch, e.Group, e.Name}
		if op := bd.filtered[fk]; op != nil {
			return bd.addHandler(srv, op, ch, msg, e)
		}
	}
	id := action + "_" + ch
	if e.Group != "" {
		id += "_" + sanitize(e.Group, isIDRune)
	}
	op := &Operation{
		Action:      action,
		Channel:     Reference{Ref: "#/channels/" + ch},
		Title:       e.Title,
		Summary:     summary(srv.system, e),
		Description: e.Description,
		Messages:    []Reference{{Ref: "#/channels/" + ch + "/messages/" + msg}},
		Bindings:    operationBindings(srv, e),
	}
	// A replier's receive operation and a requester's send operation both
	// carry the reply (AsyncAPI 3.0 allows it on either action), on the
	// destination's one reply channel: a service that only asks still
	// documents what it gets back.
	if e.Reply != nil {
		rch := bd.channel(srv, e.Destination, e.Pattern, true)
		rmsg, err := bd.message(srv, rch, e.Reply, e.ReplyContentType, nil)
		if err != nil {
			return fmt.Errorf("reply: %w", err)
		}
		op.Reply = &OperationReply{
			Channel:  &Reference{Ref: "#/channels/" + rch},
			Messages: []Reference{{Ref: "#/channels/" + rch + "/messages/" + rmsg}},
		}
	}
	if bd.doc.Operations == nil {
		bd.doc.Operations = map[string]*Operation{}
	}
	bd.doc.Operations[unique(id, func(s string) bool { return bd.doc.Operations[s] != nil })] = op
	if fk != (filteredKey{}) {
		bd.filtered[fk] = op
	}
	return nil
}

// addHandler adds to op, the receive operation of a filtered subscription,
// the message msg of channel ch that one more of its handlers (e) takes, and
// its reply; the first handler that gives a title or a description gives
// the operation's.
func (bd *builder) addHandler(srv *serverRef, op *Operation, ch, msg string, e driver.Endpoint) error {
	ref := Reference{Ref: "#/channels/" + ch + "/messages/" + msg}
	if !slices.Contains(op.Messages, ref) {
		op.Messages = append(op.Messages, ref)
	}
	op.Title = cmp.Or(op.Title, e.Title)
	op.Description = cmp.Or(op.Description, e.Description)
	if e.Reply == nil {
		return nil
	}
	rch := bd.channel(srv, e.Destination, e.Pattern, true)
	rmsg, err := bd.message(srv, rch, e.Reply, e.ReplyContentType, nil)
	if err != nil {
		return fmt.Errorf("reply: %w", err)
	}
	rref := Reference{Ref: "#/channels/" + rch + "/messages/" + rmsg}
	if op.Reply == nil {
		op.Reply = &OperationReply{Channel: &Reference{Ref: "#/channels/" + rch}}
	}
	if !slices.Contains(op.Reply.Messages, rref) {
		op.Reply.Messages = append(op.Reply.Messages, rref)
	}
	return nil
}

// unique returns id, or id with the first suffix "_2", "_3"... that taken
// rejects.
func unique(id string, taken func(string) bool) string {
	if !taken(id) {
		return id
	}
	for i := 2; ; i++ {
		if s := fmt.Sprintf("%s_%d", id, i); !taken(s) {
			return s
		}
	}
}
