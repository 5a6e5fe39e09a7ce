// Package asyncapi generates an AsyncAPI 3.0.0 document from the
// subscriptions and publishers registered on tracebus brokers, and serves it.
//
// Nothing is declared twice: the document is built from what the brokers
// already know (driver.Endpoint: destinations, groups, payload, key and reply
// types, content types) and from their transports (servers). Payload schemas
// are JSON Schemas reflected from the Go types with
// github.com/invopop/jsonschema and kept once under components/schemas.
//
//	doc, err := asyncapi.New(asyncapi.WithInfo(asyncapi.Info{Title: "billing", Version: "1.4.0"})).Build(b)
//	http.Handle("/asyncapi/", http.StripPrefix("/asyncapi", asyncapi.NewHandler(doc)))
//
// The handler serves the document as asyncapi.json and asyncapi.yaml and a
// self-contained HTML page (no scripts, styles or fonts fetched at run time)
// that lists the channels, operations and payloads. Generator.Handler serves
// the document of live brokers instead, rebuilt on each request. Tests and
// tools that have no broker build from Sources: a server and its endpoints.
//
// # Mapping
//
//   - Each transport becomes a server: protocol "nats" or "kafka" (the
//     transport's messaging system), host from its server address and port.
//   - Each destination on a server becomes a channel. NATS wildcards become
//     channel parameters: "orders.*.created" has the address
//     "orders.{token2}.created" and ">" becomes "{rest}".
//   - A subscription becomes a "receive" operation; a typed publisher a
//     "send" operation. A subscriber whose handler returns a value and a
//     Requester have an operation reply, the replier on its receive
//     operation and the requester on its send operation, so a service that
//     only asks still documents the reply it gets. Their reply channel, one
//     per destination, has a null (dynamic) address: the reply goes to the
//     address each request carries (a NATS inbox, or the Kafka reply topic
//     in the request's headers).
//   - Each message documents its payload schema, its content type and, as
//     headers, the fields the trace propagator writes (traceparent,
//     tracestate and baggage with the default W3C propagators) and, for
//     typed messages, the content-type header of their codec. Byte-level
//     subscriptions have a payload schema that accepts anything and says it
//     is unspecified; []byte bodies of a non-JSON codec are raw bytes.
//   - Bindings where AsyncAPI defines them: the NATS queue group, the Kafka
//     consumer group id and client id of an operation, and the Kafka key
//     schema of a publisher's messages.
package asyncapi
