package broker

import "context"

// handler processes one message (Broker.Subscribe).
type handler = func(ctx context.Context, msg *Message) error

// batchHandler processes a batch of messages, settled as a whole
// (Broker.SubscribeBatch, and every typed handler underneath).
type batchHandler = func(ctx context.Context, msgs []*Message) error
