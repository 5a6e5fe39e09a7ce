package broker

import "github.com/tracebus/tracebus/broker/driver"

// Message is one message on its way to or from a broker: destination, key,
// body, headers and, on consume, the delivery facts the transport filled.
// The fields are documented at driver.Message.
type Message = driver.Message

// Headers are a message's headers: case-preserving on write,
// case-insensitive on lookup. The methods are documented at
// driver.Headers.
type Headers = driver.Headers
