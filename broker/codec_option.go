package broker

import (
	"github.com/tracebus/tracebus/broker/codec"
	"github.com/tracebus/tracebus/broker/driver"
)

// WithCodec sets the broker's default codec for typed handlers, publishers
// and requesters, and makes it known for decoding by content type. The
// default is codec.JSON; a nil codec keeps it. A single endpoint takes its
// own with Codec.
func WithCodec(c codec.Codec) Option {
	return optionFunc(func(cfg *config) {
		if c != nil {
			cfg.codec = c
			cfg.codecs.add(c)
		}
	})
}

// EndpointOption configures one endpoint: a subscription (Subscribe,
// SubscribeBatch, the typed Handle functions) or a typed publisher or
// requester (NewPublisher, NewRequester). Codec, Describe, DescribeChannel
// and Undocumented return one.
type EndpointOption struct {
	codec codec.Codec
	doc   endpointDoc
}

// endpointDoc is what an endpoint tells documentation generators beyond
// its payload: the fields of driver.Endpoint of the same names.
type endpointDoc struct {
	title              string
	description        string
	channelTitle       string
	channelDescription string
	undocumented       bool
}

// Codec sets the codec of one typed endpoint, in place of the broker's
// (WithCodec). A nil codec keeps the broker's.
func Codec(c codec.Codec) EndpointOption { return EndpointOption{codec: c} }

// Describe documents a subscription or a publisher: title and description
// become its operation's in generated AsyncAPI documents. An empty string
// sets nothing. DescribeChannel documents the channel.
func Describe(title, description string) EndpointOption {
	return EndpointOption{doc: endpointDoc{title: title, description: description}}
}

// DescribeChannel documents the channel of a subscription or a publisher,
// its destination: title and description become the channel's in
// generated AsyncAPI documents. Several endpoints share one channel; the
// first registered that sets a title (a description) gives it. An empty
// string sets nothing.
func DescribeChannel(title, description string) EndpointOption {
	return EndpointOption{doc: endpointDoc{channelTitle: title, channelDescription: description}}
}

// Undocumented leaves a subscription or a publisher out of generated
// AsyncAPI documents, like FastStream's include_in_schema=False: internal
// plumbing, a debugging tap. It still works as usual and is still listed by
// Broker.Endpoints, marked so. A channel only undocumented endpoints use is
// left out as well.
func Undocumented() EndpointOption { return EndpointOption{doc: endpointDoc{undocumented: true}} }

func (o EndpointOption) applySubscribe(c *subConfig) { o.apply(&c.codec, &c.doc) }

func (o EndpointOption) applyResult(c *resultConfig) { c.sub = append(c.sub, o) }

func (o EndpointOption) applyPublisher(c *publisherConfig) { o.apply(&c.codec, &c.doc) }

func (o EndpointOption) apply(cd *codec.Codec, doc *endpointDoc) {
	if o.codec != nil {
		*cd = o.codec
	}
	if o.doc.title != "" {
		doc.title = o.doc.title
	}
	if o.doc.description != "" {
		doc.description = o.doc.description
	}
	if o.doc.channelTitle != "" {
		doc.channelTitle = o.doc.channelTitle
	}
	if o.doc.channelDescription != "" {
		doc.channelDescription = o.doc.channelDescription
	}
	if o.doc.undocumented {
		doc.undocumented = true
	}
}

// fill copies the documentation facts into e.
func (d endpointDoc) fill(e *driver.Endpoint) {
	e.Title = d.title
	e.Description = d.description
	e.ChannelTitle = d.channelTitle
	e.ChannelDescription = d.channelDescription
	e.Undocumented = d.undocumented
}
