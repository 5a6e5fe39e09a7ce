package broker

import (
	"context"
	"reflect"
)

// Requester sends requests of type Req to one destination through a Broker
// and decodes their replies into Resp: the typed face of Broker.Request,
// next to Publisher. Requests are encoded like a Publisher[Req]'s (its
// codec, key and static headers); a reply is decoded with the codec its
// content-type header names, else the requester's. The replier is
// typically a HandleResult[Req, Resp] handler.
//
// A Requester is safe for concurrent use. Its destination appears in the
// broker's Endpoints as a publisher whose Reply is Resp, once however
// often the same requester is built.
type Requester[Req, Resp any] struct {
	pub *Publisher[Req]
	dec *decoder[Resp]
}

// NewRequester returns a Requester of Req values to destination on r, a
// *Broker or a *Router (whose prefix the destination gets), expecting Resp
// replies. Either may be an Envelope: an Envelope request sends its
// correlation id, id, key and headers (see Envelope; the correlation id
// reaches the replier and comes back on the reply, the reply being matched
// by the broker's own id), and an Envelope response returns the reply's
// correlation id, id, key and headers. Every PublisherOption applies to the requests
// (Codec also to the replies' default codec). It fails on the
// programming errors NewPublisher fails on; wrap it in Must to panic
// instead. Like NewPublisher, building the same requester again registers
// nothing more.
func NewRequester[Req, Resp any](r Registrar, destination string, opts ...PublisherOption) (*Requester[Req, Resp], error) {
	p, e, err := newPublisher[Req](r, "NewRequester", destination, opts)
	if err != nil {
		return nil, err
	}
	e.Reply = valueType(reflect.TypeFor[Resp]())
	e.ReplyContentType = p.ct
	p.b.addPublisher(e)
	return &Requester[Req, Resp]{pub: p, dec: makeDecoder[Resp](p.b, p.codec)}, nil
}

// Request sends v and returns the decoded reply, with Broker.Request's
// semantics: ctx must have a deadline; an error reply is a *ReplyError
// (errors.Is(err, ErrRemote)); a reply that does not decode or validate is
// a *DecodeError or *ValidationError, recorded on the reply's receipt.
// A destination template is filled as a Publisher fills it, and the
// request's spans name it as messaging.destination.template.
func (r *Requester[Req, Resp]) Request(ctx context.Context, v Req) (Resp, error) {
	var out Resp
	m, err := r.pub.message(ctx, v)
	if err != nil {
		return out, err
	}
	var template string
	if r.pub.tmpl != nil {
		template = r.pub.tmpl.raw
	}
	_, err = r.pub.b.request(ctx, m, template, func(_ context.Context, reply *Message) error {
		var derr error
		out, derr = r.dec.decode(reply)
		return derr
	})
	return out, err
}
