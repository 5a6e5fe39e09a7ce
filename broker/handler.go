package broker

import "context"

// Handler processes one message. ctx carries what middleware put there (the
// process span, the message's baggage) and is cancelled only when a
// shutdown deadline forces the broker to abort. Returning nil acknowledges
// the message; an error triggers the subscription's retry policy.
//
// Publishing with ctx from inside a handler continues the message's trace.
type Handler func(ctx context.Context, msg *Message) error

// BatchHandler processes a batch of messages, settled as a whole: nil
// acknowledges every message, an error applies the retry policy to all.
type BatchHandler func(ctx context.Context, msgs []*Message) error
