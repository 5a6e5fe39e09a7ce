package kafkatest

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
)

// brokerNet wraps the listeners of an in-process cluster, one per broker,
// to reach the connections each broker accepted: StopBroker closes them,
// StallBroker holds them open without answering.
type brokerNet struct {
	mu    sync.Mutex
	cond  *sync.Cond
	ports map[int]*portState // by listening port
}

type portState struct {
	stalled bool
	conns   map[*stallConn]struct{}
}

func newBrokerNet() *brokerNet {
	n := &brokerNet{ports: map[int]*portState{}}
	n.cond = sync.NewCond(&n.mu)
	return n
}

// listen is kfake's ListenFn: a TCP listener whose connections n tracks.
func (n *brokerNet) listen(network, address string) (net.Listener, error) {
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	n.mu.Lock()
	if n.ports[port] == nil {
		n.ports[port] = &portState{conns: map[*stallConn]struct{}{}}
	}
	n.mu.Unlock()
	return &trackedListener{Listener: ln, n: n, port: port}, nil
}

func (n *brokerNet) state(port int) *portState {
	st := n.ports[port]
	if st == nil {
		st = &portState{conns: map[*stallConn]struct{}{}}
		n.ports[port] = st
	}
	return st
}

// closeConns closes every connection accepted on port.
func (n *brokerNet) closeConns(port int) {
	n.mu.Lock()
	st := n.state(port)
	conns := st.conns
	st.conns = map[*stallConn]struct{}{}
	n.mu.Unlock()
	for c := range conns {
		_ = c.Conn.Close()
	}
}

// setStalled stalls or resumes every connection on port, present and
// future.
func (n *brokerNet) setStalled(port int, stalled bool) {
	n.mu.Lock()
	n.state(port).stalled = stalled
	n.mu.Unlock()
	n.cond.Broadcast()
}

// resumeAll resumes every port and closes every tracked connection, so
// that no goroutine of the cluster stays blocked in a stalled connection.
func (n *brokerNet) resumeAll() {
	n.mu.Lock()
	var conns []*stallConn
	for _, st := range n.ports {
		st.stalled = false
		for c := range st.conns {
			conns = append(conns, c)
		}
		st.conns = map[*stallConn]struct{}{}
	}
	n.mu.Unlock()
	n.cond.Broadcast()
	for _, c := range conns {
		_ = c.Conn.Close()
	}
}

// waitRunning blocks while port is stalled.
func (n *brokerNet) waitRunning(port int) {
	n.mu.Lock()
	for n.state(port).stalled {
		n.cond.Wait()
	}
	n.mu.Unlock()
}

type trackedListener struct {
	net.Listener
	n    *brokerNet
	port int
}

func (l *trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	sc := &stallConn{Conn: c, n: l.n, port: l.port}
	l.n.mu.Lock()
	l.n.state(l.port).conns[sc] = struct{}{}
	l.n.mu.Unlock()
	return sc, nil
}

// stallConn is a broker's side of a client connection. While its port is
// stalled, what the client sent is held and nothing is written back: the
// broker looks alive at the TCP level and answers nothing.
type stallConn struct {
	net.Conn
	n    *brokerNet
	port int
}

func (c *stallConn) Read(p []byte) (int, error) {
	c.n.waitRunning(c.port)
	n, err := c.Conn.Read(p)
	c.n.waitRunning(c.port)
	return n, err
}

func (c *stallConn) Write(p []byte) (int, error) {
	c.n.waitRunning(c.port)
	return c.Conn.Write(p)
}

func (c *stallConn) Close() error {
	c.n.mu.Lock()
	delete(c.n.state(c.port).conns, c)
	c.n.mu.Unlock()
	return c.Conn.Close()
}

// errExternal is returned by the broker controls of an external cluster.
var errExternal = errors.New("kafkatest: an external cluster's brokers cannot be controlled")

// brokerPort returns the listening port of node in an in-process cluster.
func (c *Cluster) brokerPort(node int32) (int, error) {
	if c.fake == nil {
		return 0, errExternal
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	port, ok := c.nodePorts[node]
	if !ok {
		return 0, fmt.Errorf("kafkatest: no broker %d", node)
	}
	return port, nil
}

// StopBroker takes broker node out of the in-process cluster as a crashed
// broker leaves it: its listener closes, every connection clients have to
// it is closed, and the partitions it led get new leaders among the other
// brokers (kfake picks them at random, and group coordinators are hashed
// over the brokers left, so they may move too). StartBroker brings it back.
func (c *Cluster) StopBroker(node int32) error {
	port, err := c.brokerPort(node)
	if err != nil {
		return err
	}
	if err := c.fake.RemoveNode(node); err != nil {
		return fmt.Errorf("kafkatest: stop broker %d: %w", node, err)
	}
	c.net.closeConns(port)
	return nil
}

// StartBroker brings a broker stopped by StopBroker back on the same port
// and node id. kfake holds one copy of the data, so nothing is lost or
// caught up; partition leaders are drawn again over every broker.
func (c *Cluster) StartBroker(node int32) error {
	port, err := c.brokerPort(node)
	if err != nil {
		return err
	}
	if _, _, err := c.fake.AddNode(node, port); err != nil {
		return fmt.Errorf("kafkatest: start broker %d on port %d: %w", node, port, err)
	}
	return nil
}

// StallBroker makes broker node unreachable without closing anything: it
// still accepts connections, but reads no request and writes no response,
// on connections old and new, until the returned resume is called. Clients
// see their requests time out, as with a broker behind a network
// partition. The cluster's metadata is unchanged (the broker still leads
// its partitions); move leaders with Fake().MoveTopicPartition to model a
// controller that noticed. Close resumes every stalled broker.
func (c *Cluster) StallBroker(node int32) (resume func(), err error) {
	port, err := c.brokerPort(node)
	if err != nil {
		return nil, err
	}
	c.net.setStalled(port, true)
	var once sync.Once
	return func() { once.Do(func() { c.net.setStalled(port, false) }) }, nil
}

// Broker returns the address of broker node of an in-process cluster.
func (c *Cluster) Broker(node int32) (string, error) {
	port, err := c.brokerPort(node)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}
