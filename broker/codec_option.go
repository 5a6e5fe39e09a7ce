package broker

import "github.com/tracebus/tracebus/broker/codec"

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
// requester (NewPublisher, NewRequester). Codec and Describe return one.
type EndpointOption struct {
	codec       codec.Codec
	description string
}

// Codec sets the codec of one typed endpoint, in place of the broker's
// (WithCodec). A nil codec keeps the broker's.
func Codec(c codec.Codec) EndpointOption { return EndpointOption{codec: c} }

// Describe documents a subscription or a publisher: the text becomes the
// description of its operation in generated AsyncAPI documents.
func Describe(text string) EndpointOption { return EndpointOption{description: text} }

func (o EndpointOption) applySubscribe(c *subConfig) { o.apply(&c.codec, &c.description) }

func (o EndpointOption) applyResult(c *resultConfig) { c.sub = append(c.sub, o) }

func (o EndpointOption) applyPublisher(c *publisherConfig) { o.apply(&c.codec, &c.description) }

func (o EndpointOption) apply(cd *codec.Codec, description *string) {
	if o.codec != nil {
		*cd = o.codec
	}
	if o.description != "" {
		*description = o.description
	}
}
