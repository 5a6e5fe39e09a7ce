package memory

import (
	"context"

	"github.com/tracebus/tracebus/broker"
)

var _ broker.Pinger = (*Transport)(nil)

// Ping implements broker.Pinger: an in-process transport is reachable
// until it is closed, after which Ping returns broker.ErrClosed.
func (t *Transport) Ping(context.Context) error {
	if t.isClosed() {
		return broker.ErrClosed
	}
	return nil
}
