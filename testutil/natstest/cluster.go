package natstest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// clusterReadyTimeout bounds how long a cluster may take to connect its
// routes and elect a JetStream meta leader.
const clusterReadyTimeout = 30 * time.Second

// Cluster is a cluster of embedded nats-servers with JetStream, connected
// by routes on 127.0.0.1, for failover tests. Its methods are safe for
// concurrent use.
type Cluster struct {
	mu      sync.Mutex
	servers []*natsserver.Server  // nil where a node was shut down
	opts    []*natsserver.Options // each node's options, ports pinned, for RestartNode
}

// NewCluster starts n embedded nats-servers (n >= 3) with JetStream
// forming one cluster, each listening for clients and routes on random
// 127.0.0.1 ports and storing into its own directory under tb.TempDir().
// It returns once every route is up and JetStream has a meta leader, and
// shuts the nodes down when the test ends. It skips the test when
// TRACEBUS_NATS_URL names an external server, since the test could not
// stop nodes of a cluster it did not start.
func NewCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	if os.Getenv(EnvURL) != "" {
		tb.Skip("natstest: a cluster test needs embedded servers; unset " + EnvURL)
	}
	// The route ports are reserved and released before the nodes bind
	// them; another process may take one in between, and the cluster then
	// does not form. A second attempt uses fresh ports.
	var c *Cluster
	var err error
	for range 2 {
		if c, err = startCluster(tb.TempDir(), n); err == nil {
			break
		}
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Shutdown)
	return c
}

func startCluster(dir string, n int) (*Cluster, error) {
	if n < 3 {
		// JetStream needs a quorum: with two nodes, losing one stops it.
		return nil, fmt.Errorf("natstest: cluster of %d nodes; JetStream needs at least 3", n)
	}
	// Reserve the route ports first so that every node can name all the
	// others as routes: a full mesh forms without waiting for gossip.
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("natstest: reserve route port: %w", err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
	}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	c := &Cluster{}
	for i := range n {
		opts := &natsserver.Options{
			ServerName:         fmt.Sprintf("natstest-%d", i),
			Host:               "127.0.0.1",
			Port:               natsserver.RANDOM_PORT,
			NoLog:              true,
			NoSigs:             true,
			JetStream:          true,
			StoreDir:           filepath.Join(dir, fmt.Sprintf("n%d", i)),
			JetStreamMaxMemory: 256 << 20,
			JetStreamMaxStore:  1 << 30,
			Cluster: natsserver.ClusterOpts{
				Name: "natstest",
				Host: "127.0.0.1",
				Port: ports[i],
			},
			Routes: routes,
		}
		srv, err := natsserver.NewServer(opts)
		if err != nil {
			c.Shutdown()
			return nil, fmt.Errorf("natstest: new cluster node %d: %w", i, err)
		}
		if os.Getenv(EnvLog) != "" {
			opts.NoLog = false
			srv.ConfigureLogger()
		}
		srv.Start()
		c.servers = append(c.servers, srv)
		c.opts = append(c.opts, opts)
	}
	if err := c.waitReady(); err != nil {
		c.Shutdown()
		return nil, err
	}
	// Pin the client ports so that RestartNode comes back where clients
	// reconnect to.
	for i, srv := range c.servers {
		c.opts[i].Port = srv.Addr().(*net.TCPAddr).Port
	}
	return c, nil
}

// waitReady waits until every node accepts clients and has a route to
// every other node, and the JetStream meta leader knows every node.
func (c *Cluster) waitReady() error {
	deadline := time.Now().Add(clusterReadyTimeout)
	for _, srv := range c.servers {
		if !srv.ReadyForConnections(readyTimeout) {
			return fmt.Errorf("natstest: cluster node %s not ready for connections after %v", srv.Name(), readyTimeout)
		}
	}
	for {
		ready := c.hasMetaLeader()
		for _, srv := range c.servers {
			if srv.NumRoutes() < len(c.servers)-1 {
				ready = false
			}
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("natstest: cluster not formed after %v", clusterReadyTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hasMetaLeader reports whether a node leads the JetStream meta group and
// knows every node as a JetStream peer with current stats: before that,
// creating a replicated stream fails with "no suitable peers for
// placement".
func (c *Cluster) hasMetaLeader() bool {
	for _, srv := range c.servers {
		if srv != nil && srv.JetStreamIsLeader() && len(srv.JetStreamClusterPeers()) == len(c.servers) {
			return true
		}
	}
	return false
}

// Size returns the number of nodes the cluster was started with.
func (c *Cluster) Size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.servers)
}

// Server returns node i, or nil when it was shut down.
func (c *Cluster) Server(i int) *natsserver.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[i]
}

// URLs returns the client URLs of the running nodes, comma-separated, in
// node order: the form natsgo.Connect takes for a cluster.
func (c *Cluster) URLs() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var urls []string
	for _, srv := range c.servers {
		if srv != nil {
			urls = append(urls, srv.ClientURL())
		}
	}
	return strings.Join(urls, ",")
}

// ServerOf returns the index of the node nc is connected to, or -1.
func (c *Cluster) ServerOf(nc *natsgo.Conn) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := nc.ConnectedServerId()
	for i, srv := range c.servers {
		if srv != nil && srv.ID() == id {
			return i
		}
	}
	return -1
}

// Connect opens a client connection that knows every running node and
// fails over between them, closed when the test ends. It connects to the
// nodes in order (no randomizing), so the first running node is the one
// used; opts are applied after these defaults.
func (c *Cluster) Connect(tb testing.TB, opts ...natsgo.Option) *natsgo.Conn {
	tb.Helper()
	return c.ConnectVia(tb, 0, opts...)
}

// ShutdownNode shuts node i down for good (clients connected to it fail
// over to the others) and waits until it has stopped.
func (c *Cluster) ShutdownNode(i int) {
	c.mu.Lock()
	srv := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// RestartNode starts node i again after ShutdownNode, on the same client
// and route ports with the same store, so that it rejoins the cluster and
// catches its streams up. It fails tb when the node does not come up; it
// does not wait for JetStream to elect leaders (see WaitStreamLeader).
func (c *Cluster) RestartNode(tb testing.TB, i int) {
	tb.Helper()
	c.mu.Lock()
	running := c.servers[i] != nil
	opts := c.opts[i].Clone()
	c.mu.Unlock()
	if running {
		tb.Fatalf("natstest: node %d is running", i)
	}
	// The ports were just released; wait until they can be bound again
	// rather than letting the node fail to listen.
	for _, port := range []int{opts.Port, opts.Cluster.Port} {
		if err := waitPortFree(opts.Host, port); err != nil {
			tb.Fatalf("natstest: restart node %d: %v", i, err)
		}
	}
	srv, err := runServer(opts)
	if err != nil {
		tb.Fatalf("natstest: restart node %d: %v", i, err)
	}
	c.mu.Lock()
	c.servers[i] = srv
	c.mu.Unlock()
}

// Index returns the index of the node whose server name is name (as a
// stream's or consumer's ClusterInfo names its leader and replicas), or -1.
func (c *Cluster) Index(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, o := range c.opts {
		if o.ServerName == name {
			return i
		}
	}
	return -1
}

// StreamLeader returns the index of the node that leads stream, as the
// stream's info reports it through js, or -1 while it has no leader.
func (c *Cluster) StreamLeader(ctx context.Context, js jetstream.JetStream, stream string) (int, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return -1, fmt.Errorf("natstest: stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return -1, fmt.Errorf("natstest: stream %s info: %w", stream, err)
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return -1, nil
	}
	return c.Index(info.Cluster.Leader), nil
}

// ConnectVia is Connect with node i first in the URL list, so that the
// client uses node i while it runs and fails over to the others.
func (c *Cluster) ConnectVia(tb testing.TB, i int, opts ...natsgo.Option) *natsgo.Conn {
	tb.Helper()
	c.mu.Lock()
	var urls []string
	for j := range c.servers {
		k := (i + j) % len(c.servers)
		if c.servers[k] != nil {
			urls = append(urls, c.servers[k].ClientURL())
		}
	}
	c.mu.Unlock()
	all := append([]natsgo.Option{
		natsgo.DontRandomize(),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(50 * time.Millisecond),
		natsgo.ReconnectJitter(0, 0),
	}, opts...)
	nc, err := natsgo.Connect(strings.Join(urls, ","), all...)
	if err != nil {
		tb.Fatalf("natstest: connect to cluster via node %d: %v", i, err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// Shutdown shuts every running node down. Calling it again is safe.
func (c *Cluster) Shutdown() {
	for i := range c.Size() {
		c.ShutdownNode(i)
	}
}
