package driver

import "reflect"

// EndpointKind says whether an Endpoint receives or sends messages.
type EndpointKind uint8

// The kinds of Endpoint.
const (
	// EndpointSubscriber receives messages: a subscription made with
	// Subscribe, SubscribeBatch or a typed Handle function.
	EndpointSubscriber EndpointKind = iota + 1
	// EndpointPublisher sends messages: a typed Publisher.
	EndpointPublisher
)

// String returns "subscriber" or "publisher".
func (k EndpointKind) String() string {
	switch k {
	case EndpointSubscriber:
		return "subscriber"
	case EndpointPublisher:
		return "publisher"
	}
	return "unknown"
}

// Endpoint describes one subscription or publisher registered on a Broker:
// everything the broker knows about the messages it exchanges there.
// Documentation generators (package broker/asyncapi) build on it, so that
// nothing is declared twice.
type Endpoint struct {
	// Kind says whether the endpoint receives or sends.
	Kind EndpointKind
	// Destination is the subject, subject pattern or topic.
	Destination string
	// Pattern reports a subscriber whose Destination is a regular
	// expression over destination names that the transport matches
	// itself (kafkabroker.Pattern).
	Pattern bool
	// Group is the consumer or queue group of a subscriber.
	Group string
	// Name is the durable subscription name of a subscriber, if any.
	Name string
	// Batch reports a batch subscriber or a publisher used for batches.
	Batch bool
	// Payload is the Go type of one message body, nil for byte-level
	// endpoints whose payload is unspecified.
	Payload reflect.Type
	// ContentType is the content type of the endpoint's codec, "" for
	// byte-level endpoints.
	ContentType string
	// Key is the Go type a publisher derives message keys from (Kafka
	// record keys), nil when it sets none.
	Key reflect.Type
	// Reply is the Go type a subscriber's handler returns, sent to the
	// request's reply address and to its publishers; nil when the handler
	// returns nothing.
	Reply reflect.Type
	// ReplyContentType is the content type replies are encoded with.
	ReplyContentType string
	// Title and Description document the endpoint's operation, as given
	// with Describe.
	Title, Description string
	// ChannelTitle and ChannelDescription document the endpoint's
	// destination, as given with DescribeChannel.
	ChannelTitle, ChannelDescription string
	// Filtered reports a subscriber that shares its subscription with other
	// handlers of the same destination, group and name, each taking the
	// messages its filter selects (see broker.Filter). Documentation
	// generators show them as one operation with each handler's message.
	Filtered bool
	// Undocumented reports an endpoint given Undocumented: documentation
	// generators leave it out.
	Undocumented bool
}
