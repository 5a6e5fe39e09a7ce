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
	_, err := t.RTT(ctx)
	return err
}

// RTT makes a round trip to the server, as Ping does, and returns how long
// it took.
func (t *Transport) RTT(ctx context.Context) (time.Duration, error) {
	if err := t.usable(); err != nil {
		return 0, err
	}
	if st := t.nc.Status(); st != natsgo.CONNECTED {
		return 0, fmt.Errorf("natsbroker: ping: %w: connection is %s", broker.ErrUnavailable, st)
	}
	start := time.Now()
	if err := flush(ctx, t.nc); err != nil {
		return 0, fmt.Errorf("natsbroker: ping: round trip after %v: %w", time.Since(start).Round(time.Microsecond), err)
	}
	return time.Since(start), nil
}
