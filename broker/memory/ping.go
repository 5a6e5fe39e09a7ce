package memory

import (
	"context"

	"github.com/tracebus/tracebus/broker"
)

// Ping implements driver.Transport: an in-process transport is reachable
// until it is closed, after which Ping returns broker.ErrClosed.
func (t *Transport) Ping(context.Context) error {
	if t.isClosed() {
		return broker.ErrClosed
	}
	return nil
}
