// Package replyid names the header that matches a reply to its request on
// transports without reply subjects (Kafka), shared by the broker, which
// sets it, and the transports, which read it.
package replyid

// Header holds the broker's own id of a request when the caller chose the
// request's correlation id (driver.HeaderCorrelationID): replies are
// matched by this id, never by the caller's, so that two requests with
// the same caller id each get their own reply. Broker.Reply copies it from
// the request into the reply. A request without a caller id carries the
// broker's id as its correlation id and no Header.
const Header = "x-tracebus-reply-id"
