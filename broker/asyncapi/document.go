package asyncapi

import "encoding/json"

// Version is the AsyncAPI specification version of generated documents.
const Version = "3.0.0"

// Document is an AsyncAPI 3.0.0 document. It holds the parts of the
// specification that tracebus fills; marshal it with JSON or YAML.
type Document struct {
	AsyncAPI           string                `json:"asyncapi"`
	ID                 string                `json:"id,omitempty"`
	Info               Info                  `json:"info"`
	Servers            map[string]*Server    `json:"servers,omitempty"`
	DefaultContentType string                `json:"defaultContentType,omitempty"`
	Channels           map[string]*Channel   `json:"channels,omitempty"`
	Operations         map[string]*Operation `json:"operations,omitempty"`
	Components         *Components           `json:"components,omitempty"`
}

// Info is the metadata of the application the document describes.
type Info struct {
	Title       string `json:"title"`
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
}

// Server is a message broker the application connects to.
type Server struct {
	Host        string `json:"host"`
	Protocol    string `json:"protocol"`
	Title       string `json:"title,omitempty"`
	Description string `json:"description,omitempty"`
}

// Channel is an address messages are sent to or received from. A nil
// Address means the address is only known at run time (reply channels).
type Channel struct {
	Address     *string               `json:"address"`
	Title       string                `json:"title,omitempty"`
	Description string                `json:"description,omitempty"`
	Messages    map[string]*Message   `json:"messages,omitempty"`
	Parameters  map[string]*Parameter `json:"parameters,omitempty"`
	Servers     []Reference           `json:"servers,omitempty"`
}

// Parameter describes a parameter of a channel address, such as the token a
// NATS wildcard stands for.
type Parameter struct {
	Description string `json:"description,omitempty"`
}

// Operation is something the application does on a channel: "receive" for
// subscriptions, "send" for publishers.
type Operation struct {
	Action      string             `json:"action"`
	Channel     Reference          `json:"channel"`
	Title       string             `json:"title,omitempty"`
	Summary     string             `json:"summary,omitempty"`
	Description string             `json:"description,omitempty"`
	Messages    []Reference        `json:"messages,omitempty"`
	Reply       *OperationReply    `json:"reply,omitempty"`
	Bindings    *OperationBindings `json:"bindings,omitempty"`
}

// OperationReply is the reply part of a request/reply operation.
type OperationReply struct {
	Channel  *Reference  `json:"channel,omitempty"`
	Messages []Reference `json:"messages,omitempty"`
}

// Message is one kind of message exchanged on a channel. Headers and
// Payload are JSON Schemas.
type Message struct {
	Name        string           `json:"name,omitempty"`
	Title       string           `json:"title,omitempty"`
	Description string           `json:"description,omitempty"`
	ContentType string           `json:"contentType,omitempty"`
	Headers     json.RawMessage  `json:"headers,omitempty"`
	Payload     json.RawMessage  `json:"payload,omitempty"`
	Bindings    *MessageBindings `json:"bindings,omitempty"`
}

// Components holds the schemas that messages refer to.
type Components struct {
	Schemas map[string]json.RawMessage `json:"schemas,omitempty"`
}

// Reference points at another part of the document, such as
// "#/channels/orders".
type Reference struct {
	Ref string `json:"$ref"`
}

// OperationBindings are the protocol-specific facts of an operation.
type OperationBindings struct {
	Kafka *KafkaOperationBinding `json:"kafka,omitempty"`
	NATS  *NATSOperationBinding  `json:"nats,omitempty"`
}

// KafkaOperationBinding is the Kafka operation binding (version 0.5.0):
// the consumer group and client id, each as a schema of one value.
type KafkaOperationBinding struct {
	GroupID        json.RawMessage `json:"groupId,omitempty"`
	ClientID       json.RawMessage `json:"clientId,omitempty"`
	BindingVersion string          `json:"bindingVersion"`
}

// NATSOperationBinding is the NATS operation binding (version 0.1.0): the
// queue group of a subscription.
type NATSOperationBinding struct {
	Queue          string `json:"queue,omitempty"`
	BindingVersion string `json:"bindingVersion"`
}

// MessageBindings are the protocol-specific facts of a message.
type MessageBindings struct {
	Kafka *KafkaMessageBinding `json:"kafka,omitempty"`
}

// KafkaMessageBinding is the Kafka message binding (version 0.5.0): the
// schema of the record key.
type KafkaMessageBinding struct {
	Key            json.RawMessage `json:"key,omitempty"`
	BindingVersion string          `json:"bindingVersion"`
}
