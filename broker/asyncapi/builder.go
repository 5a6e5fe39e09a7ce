package asyncapi

import (
	"encoding/json"
	"fmt"
	"net"
	"reflect"
	"strconv"
	"strings"

	"github.com/tracebus/tracebus/broker/driver"
)

// server returns the server of info, adding it on first sight. Its id is the
// messaging system ("nats", "kafka"), numbered when several servers of one
// system are described.
func (bd *builder) server(info driver.Info) *serverRef {
	system := info.System
	if system == "" {
		system = "unknown"
	}
	host := info.ServerAddress
	if host != "" && info.ServerPort > 0 {
		host = net.JoinHostPort(host, strconv.Itoa(info.ServerPort))
	}
	var desc string
	switch {
	case system == "memory":
		host, desc = "in-process", "The in-process memory transport of tracebus (tests and demos)."
	case host == "":
		host = "unknown"
	}
	k := serverKey{system, host}
	if s := bd.servers[k]; s != nil {
		return s
	}
	if bd.doc.Servers == nil {
		bd.doc.Servers = map[string]*Server{}
	}
	id := unique(sanitize(system, isIDRune), func(s string) bool { return bd.doc.Servers[s] != nil })
	bd.doc.Servers[id] = &Server{Host: host, Protocol: system, Description: desc}
	s := &serverRef{id: id, system: system, info: info}
	bd.servers[k] = s
	return s
}

var channelIDReplacer = strings.NewReplacer("*", "any", ">", "rest")

// channel returns the id of the channel of destination on srv, adding it on
// first sight. With reply, it is the channel of the replies to the
// requests on destination, shared by its repliers and requesters: its
// address is null, as each request carries its own reply address. With
// pattern, destination is a regular expression over names
// (kafkabroker.Pattern): see patternAddress.
func (bd *builder) channel(srv *serverRef, destination string, pattern, reply bool) string {
	k := channelKey{srv.id, destination, pattern, reply}
	if id, ok := bd.channels[k]; ok {
		return id
	}
	if bd.doc.Channels == nil {
		bd.doc.Channels = map[string]*Channel{}
	}
	base := sanitize(channelIDReplacer.Replace(destination), isIDRune)
	if reply {
		base += "_reply"
	}
	taken := func(s string) bool { return bd.doc.Channels[s] != nil }
	if taken(base) && len(bd.servers) > 1 {
		base = srv.id + "_" + base
	}
	id := unique(base, taken)
	ch := &Channel{Servers: []Reference{{Ref: "#/servers/" + srv.id}}}
	switch {
	case reply:
		ch.Description = fmt.Sprintf("Replies to the requests on %q, each sent to the reply address its request carries.", destination)
	case pattern:
		ch.Address, ch.Parameters = patternAddress(srv.system, destination)
	default:
		addr, params := channelAddress(destination, hasSubjectWildcards(srv.system))
		ch.Address, ch.Parameters = &addr, params
	}
	bd.doc.Channels[id] = ch
	bd.channels[k] = id
	return id
}

// unspecifiedPayload is the payload of byte-level endpoints: any bytes.
var unspecifiedPayload = json.RawMessage(`{"description":"Unspecified: a byte-level endpoint; the body is passed on as raw bytes."}`)

// message returns the id of the message with the given payload, content
// type and key in channel ch, adding it on first sight. Its id is the
// payload type's schema name, "bytes" for byte-level endpoints or
// "payload" for unnamed types.
//
// Subscribers do not know the key type publishers derive keys from, so a
// message without a key type is the same as one with a key type and the
// same payload: the key binding describes the message on the wire.
func (bd *builder) message(srv *serverRef, ch string, payload reflect.Type, contentType string, key reflect.Type) (string, error) {
	c := bd.doc.Channels[ch]
	for _, m := range bd.messages[ch] {
		if m.payload != payload || m.contentType != contentType || m.key != nil && key != nil && m.key != key {
			continue
		}
		if m.key == nil && key != nil {
			b, err := bd.keyBinding(srv, key)
			if err != nil {
				return "", err
			}
			m.key = key
			c.Messages[m.id].Bindings = b
		}
		return m.id, nil
	}
	msg := &Message{ContentType: contentType, Headers: bd.messageHeaders(contentType), Payload: unspecifiedPayload}
	base := "bytes"
	if payload != nil {
		s, err := bd.payloadSchema(payload, contentType)
		if err != nil {
			return "", fmt.Errorf("payload: %w", err)
		}
		msg.Payload = s
		msg.Title = payload.String()
		msg.Description = encodingNote(payload, contentType)
		base = "payload"
		if n := bd.schemas.name(deref(payload)); n != "" {
			base = n
		}
	}
	b, err := bd.keyBinding(srv, key)
	if err != nil {
		return "", err
	}
	msg.Bindings = b
	if c.Messages == nil {
		c.Messages = map[string]*Message{}
	}
	id := unique(base, func(s string) bool { return c.Messages[s] != nil })
	msg.Name = id
	c.Messages[id] = msg
	bd.messages[ch] = append(bd.messages[ch], &messageEntry{id: id, payload: payload, key: key, contentType: contentType})
	return id, nil
}

// keyBinding returns the Kafka binding with the schema of key, or nil when
// there is no key type or the server is not Kafka.
func (bd *builder) keyBinding(srv *serverRef, key reflect.Type) (*MessageBindings, error) {
	if key == nil || srv.system != "kafka" {
		return nil, nil
	}
	s, err := bd.schemas.schema(key)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	return &MessageBindings{Kafka: &KafkaMessageBinding{Key: s, BindingVersion: "0.5.0"}}, nil
}

// rawBytesPayload is the payload of a []byte body that is not JSON: the
// bytes themselves (the reflector's base64 string is JSON's encoding).
var rawBytesPayload = json.RawMessage(`{"type":"string","format":"binary","description":"The raw bytes of the body."}`)

// payloadSchema returns the schema of payload as encoded with contentType.
func (bd *builder) payloadSchema(payload reflect.Type, contentType string) (json.RawMessage, error) {
	if isBytes(payload) && !isJSON(contentType) {
		return rawBytesPayload, nil
	}
	return bd.schemas.schema(payload)
}

// encodingNote says that a payload's schema describes the fields of a Go
// type whose body is not JSON (protobuf, for instance).
func encodingNote(payload reflect.Type, contentType string) string {
	t := deref(payload)
	if contentType == "" || isJSON(contentType) || isBytes(t) || t.Kind() == reflect.String {
		return ""
	}
	return fmt.Sprintf("The schema describes the fields of %s; the body is encoded as %s, not as JSON.", payload, contentType)
}

func isBytes(t reflect.Type) bool {
	t = deref(t)
	return t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8
}

// isJSON reports whether contentType is JSON: application/json or a
// "+json" media type, parameters ignored.
func isJSON(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// summary states what the bindings cannot: batches, durable names, and the
// group on systems without an operation binding for it.
func summary(system string, e driver.Endpoint) string {
	var parts []string
	if e.Batch {
		if e.Kind == driver.EndpointSubscriber {
			parts = append(parts, "Receives messages in batches.")
		} else {
			parts = append(parts, "Sends messages in batches.")
		}
	}
	if e.Name != "" {
		parts = append(parts, fmt.Sprintf("Durable subscription %q.", e.Name))
	}
	if e.Group != "" && !groupBound(system, e.Group) {
		parts = append(parts, fmt.Sprintf("Consumer group %q.", e.Group))
	}
	return strings.Join(parts, " ")
}

// operationBindings returns the NATS queue group, or the Kafka consumer
// group and client id, of a subscription.
func operationBindings(srv *serverRef, e driver.Endpoint) *OperationBindings {
	if e.Kind != driver.EndpointSubscriber {
		return nil
	}
	switch srv.system {
	case "nats":
		if e.Group != "" && groupBound(srv.system, e.Group) {
			return &OperationBindings{NATS: &NATSOperationBinding{Queue: e.Group, BindingVersion: "0.1.0"}}
		}
	case "kafka":
		b := &KafkaOperationBinding{GroupID: constSchema(e.Group), ClientID: constSchema(srv.info.ClientID), BindingVersion: "0.5.0"}
		if b.GroupID != nil || b.ClientID != nil {
			return &OperationBindings{Kafka: b}
		}
	}
	return nil
}

// maxNATSQueue is the longest queue name the NATS binding allows.
const maxNATSQueue = 255

// groupBound reports whether an operation binding of system documents the
// consumer group: NATS queues up to maxNATSQueue bytes, Kafka group ids.
func groupBound(system, group string) bool {
	return system == "kafka" || system == "nats" && len(group) <= maxNATSQueue
}

// constSchema is the schema of the single string v, as the Kafka binding
// writes group and client ids; nil for "".
func constSchema(v string) json.RawMessage {
	if v == "" {
		return nil
	}
	b, _ := json.Marshal(map[string]any{"type": "string", "enum": []string{v}})
	return b
}
