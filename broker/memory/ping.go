package memory

import (
	"context"
	"database/sql/driver"

	"github.com/tracebus/tracebus/broker"
)

var _ driver.Pinger = (*Transport)(nil)

// Ping implements driver.Pinger: an in-process transport is reachable
// until it is closed, after which Ping returns broker.ErrClosed.
func (t *Transport) Ping(context.Context) error {
	if t.isClosed() {
		return broker.ErrClosed
	}
	return nil
}
