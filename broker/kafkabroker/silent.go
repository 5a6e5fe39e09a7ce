package kafkabroker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

// A partition reader looks its partition's leader up with a metadata
// request that kafka-go sends without a deadline, on a context that lives as
// long as the reader (kafka.Dialer.LookupPartition). When the broker it asks
// accepts the connection and never answers (a broker behind a network
// partition, a hung process), the reader waits forever: its partition is not
// consumed again until the group rebalances, which it may never do since the
// coordinator is fine. answerConn bounds every read kafka-go starts without
// a deadline, and fails it with an error kafka-go does not retry on the same
// connection, so the reader asks the next seed broker.

// errNoAnswer is the error of a read that had no deadline and got no answer
// within the transport's dial timeout.
var errNoAnswer = errors.New("kafkabroker: broker did not answer")

// withAnswerTimeout returns a copy of d whose connections fail a read
// started without a deadline after timeout. It keeps d's DialFunc (a
// WithReaderConfig hook may have set one).
func withAnswerTimeout(d *kafka.Dialer, timeout time.Duration) *kafka.Dialer {
	if d == nil || timeout <= 0 {
		return d
	}
	cp := *d
	dial := d.DialFunc
	if dial == nil {
		nd := &net.Dialer{LocalAddr: d.LocalAddr, FallbackDelay: d.FallbackDelay, KeepAlive: d.KeepAlive}
		dial = nd.DialContext
	}
	cp.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &answerConn{Conn: c, timeout: timeout, addr: addr}, nil
	}
	return &cp
}

// answerConn is a connection on which a read deadline of zero (none) means
// timeout from when it was set.
type answerConn struct {
	net.Conn
	timeout time.Duration
	addr    string

	mu      sync.Mutex
	imposed bool // the read deadline in force is ours, not kafka-go's
}

func (c *answerConn) SetDeadline(t time.Time) error {
	if err := c.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

func (c *answerConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.imposed = t.IsZero()
	if c.imposed {
		t = time.Now().Add(c.timeout)
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *answerConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.mu.Lock()
		imposed := c.imposed
		c.mu.Unlock()
		if imposed {
			// Not wrapped: kafka-go retries a temporary error (a timeout
			// is one) on the same connection forever.
			return n, fmt.Errorf("%w: %s sent nothing for %v", errNoAnswer, c.addr, c.timeout)
		}
	}
	return n, err
}
