package natsbroker

import (
	"context"
	"fmt"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/tracebus/tracebus/broker"
)

// Ping implements driver.Transport: it fails when the connection is not
// connected (reconnecting, draining, closed) and otherwise makes a round
// trip to the server, within ctx (defaultTimeout when ctx has no deadline).
func (t *Transport) Ping(ctx context.Context) error {
	if err := t.usable(); err != nil {
		return err
	}
	if st := t.nc.Status(); st != natsgo.CONNECTED {
		return fmt.Errorf("natsbroker: ping: %w: connection is %s", broker.ErrUnavailable, st)
	}
	start := time.Now()
	if err := flush(ctx, t.nc); err != nil {
		return fmt.Errorf("natsbroker: ping: round trip after %v: %w", time.Since(start).Round(time.Microsecond), err)
	}
	return nil
}
