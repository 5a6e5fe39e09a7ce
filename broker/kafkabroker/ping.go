package kafkabroker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tracebus/tracebus/broker"
)

// pingTimeout bounds a ping whose ctx has no deadline.
const pingTimeout = 5 * time.Second

// Ping implements driver.Transport: it asks the seed brokers, in order, for
// the cluster's metadata over a new connection (with the transport's TLS
// and SASL settings) and succeeds as soon as one answers. It does not use
// the writer's cached metadata, which would hide a cluster that went away a
// moment ago.
func (t *Transport) Ping(ctx context.Context) error {
	if t.isClosed() {
		return broker.ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, pingTimeout)
		defer cancel()
	}
	var errs []error
	for _, addr := range t.cfg.brokers {
		err := t.pingBroker(ctx, addr)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("kafkabroker: ping: %w: no seed broker answered: %w", broker.ErrUnavailable, errors.Join(errs...))
}

func (t *Transport) pingBroker(ctx context.Context, addr string) error {
	conn, err := t.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	brokers, err := conn.Brokers()
	if err != nil {
		return fmt.Errorf("metadata from %s: %w", addr, err)
	}
	if len(brokers) == 0 {
		return fmt.Errorf("metadata from %s: no brokers", addr)
	}
	return nil
}
