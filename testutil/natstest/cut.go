package natstest

import (
	"errors"
	"net"
	"sync"
)

// ErrCut is what a CutDialer's dials fail with after Cut.
var ErrCut = errors.New("natstest: network cut")

// CutDialer dials NATS connections that Cut closes all at once, after which
// every dial fails with ErrCut: the client is gone from the network as if
// its process had died or been partitioned away, without Close, Drain or
// a final ack. Give it to a connection with natsgo.SetCustomDialer. Its
// methods are safe for concurrent use; the zero value is ready.
type CutDialer struct {
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

// Dial connects to address unless the dialer was cut.
func (d *CutDialer) Dial(network, address string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cut {
		return nil, ErrCut
	}
	nd := net.Dialer{Timeout: readyTimeout}
	conn, err := nd.Dial(network, address)
	if err != nil {
		return nil, err
	}
	d.conns = append(d.conns, conn)
	return conn, nil
}

// Cut closes every connection dialed so far and fails later dials.
func (d *CutDialer) Cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cut = true
	for _, c := range d.conns {
		_ = c.Close()
	}
	d.conns = nil
}
