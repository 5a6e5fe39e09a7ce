package natstest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
)

// EnvURL names the environment variable that points tests at an external
// NATS server (with JetStream enabled) instead of an embedded one, such as
// "nats://localhost:4222".
const EnvURL = "TRACEBUS_NATS_URL"

// EnvLog names the environment variable that, when set to a non-empty
// value, makes embedded servers log to standard error, for debugging.
const EnvLog = "TRACEBUS_NATS_LOG"

// readyTimeout bounds how long a start or restart may take.
const readyTimeout = 10 * time.Second

// ErrExternal is returned by Server.RestartServer when the server is not
// embedded and cannot be restarted by the test.
var ErrExternal = errors.New("natstest: external server cannot be restarted")

// Server is a NATS server used by tests: embedded, or external when EnvURL
// is set. Its methods are safe for concurrent use.
type Server struct {
	url     string
	tempDir string // removed by Shutdown; empty when the caller owns the store

	mu   sync.Mutex
	opts *natsserver.Options // nil for an external server
	srv  *natsserver.Server
}

// New returns a server for tb. Without EnvURL it starts an embedded
// nats-server with JetStream on 127.0.0.1 and a random port, storing into
// tb.TempDir(), and shuts it down when the test ends. With EnvURL it returns
// the external server, which it leaves running.
func New(tb testing.TB) *Server {
	tb.Helper()
	if url := os.Getenv(EnvURL); url != "" {
		return &Server{url: url}
	}
	s, err := start(tb.TempDir(), "")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Shutdown)
	return s
}

// Start starts an embedded nats-server with JetStream on 127.0.0.1 and a
// random port, storing into a new temporary directory, for use outside of
// tests (examples, demos). EnvURL is ignored. Shutdown stops the server and
// removes the directory.
func Start() (*Server, error) {
	dir, err := os.MkdirTemp("", "natstest-")
	if err != nil {
		return nil, fmt.Errorf("natstest: store directory: %w", err)
	}
	s, err := start(dir, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func start(storeDir, tempDir string) (*Server, error) {
	opts := &natsserver.Options{
		ServerName: "natstest",
		Host:       "127.0.0.1",
		Port:       natsserver.RANDOM_PORT,
		NoLog:      true,
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   storeDir,
		// Small limits keep an embedded server from reserving the host's
		// memory and disk; tests store little.
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  1 << 30,
	}
	srv, err := runServer(opts)
	if err != nil {
		return nil, err
	}
	// Pin the port so that Restart comes back where clients reconnect to.
	opts.Port = srv.Addr().(*net.TCPAddr).Port
	return &Server{url: srv.ClientURL(), tempDir: tempDir, opts: opts, srv: srv}, nil
}

func runServer(opts *natsserver.Options) (*natsserver.Server, error) {
	srv, err := natsserver.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natstest: new server: %w", err)
	}
	if os.Getenv(EnvLog) != "" {
		opts.NoLog = false
		srv.ConfigureLogger()
	}
	srv.Start()
	if !srv.ReadyForConnections(readyTimeout) {
		srv.Shutdown()
		return nil, fmt.Errorf("natstest: server not ready for connections after %v", readyTimeout)
	}
	return srv, nil
}

// URL returns the client URL of the server, such as "nats://127.0.0.1:41234".
func (s *Server) URL() string { return s.url }

// Embedded reports whether the server runs in this process (and can be
// restarted by the test).
func (s *Server) Embedded() bool { return s.opts != nil }

// Server returns the embedded nats-server, or nil for an external server.
func (s *Server) Server() *natsserver.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

// Connect opens a client connection to the server, closed when the test
// ends. The connection retries forever on disconnect with a short wait, so
// that it survives Restart; opts are applied after these defaults.
func (s *Server) Connect(tb testing.TB, opts ...natsgo.Option) *natsgo.Conn {
	tb.Helper()
	nc, err := s.Dial(opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// Dial opens a client connection to the server, like Connect, without
// tying it to a test. The caller closes it.
func (s *Server) Dial(opts ...natsgo.Option) (*natsgo.Conn, error) {
	all := append([]natsgo.Option{
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(50 * time.Millisecond),
		natsgo.ReconnectJitter(0, 0),
	}, opts...)
	nc, err := natsgo.Connect(s.url, all...)
	if err != nil {
		return nil, fmt.Errorf("natstest: connect to %s: %w", s.url, err)
	}
	return nc, nil
}

// Restart shuts the embedded server down and starts it again on the same
// port with the same store, so clients reconnect and JetStream streams and
// consumers survive. It skips the test for an external server.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if err := s.RestartServer(); err != nil {
		if errors.Is(err, ErrExternal) {
			tb.Skip("natstest: restart needs the embedded server; unset " + EnvURL)
		}
		tb.Fatal(err)
	}
}

// RestartServer is Restart without a test: it returns ErrExternal for an
// external server.
func (s *Server) RestartServer() error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.StartAgain()
}

// Stop shuts the embedded server down, keeping its port and store for
// StartAgain. Clients see a disconnect and keep trying to reconnect. It
// returns ErrExternal for an external server.
func (s *Server) Stop() error {
	if s.opts == nil {
		return ErrExternal
	}
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
	return nil
}

// StartAgain starts a server stopped with Stop on the same port and store.
// It returns ErrExternal for an external server.
func (s *Server) StartAgain() error {
	if s.opts == nil {
		return ErrExternal
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("natstest: server is running")
	}
	opts := s.opts.Clone()
	// The port was just released; wait until the kernel lets it be bound
	// again rather than letting the new server fail to listen.
	if err := waitPortFree(opts.Host, opts.Port); err != nil {
		return fmt.Errorf("natstest: restart: %w", err)
	}
	srv, err := runServer(opts)
	if err != nil {
		return fmt.Errorf("natstest: restart on port %d: %w", opts.Port, err)
	}
	s.srv = srv
	return nil
}

// Shutdown stops an embedded server and removes a store created by Start. It
// does nothing for an external server. Calling it again is safe.
func (s *Server) Shutdown() {
	if s.opts == nil {
		return
	}
	_ = s.Stop()
	if s.tempDir != "" {
		_ = os.RemoveAll(s.tempDir)
	}
}

// waitPortFree waits until host:port can be bound, for at most readyTimeout.
func waitPortFree(host string, port int) error {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	deadline := time.Now().Add(readyTimeout)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			_ = ln.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("port %d not free: %w", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
