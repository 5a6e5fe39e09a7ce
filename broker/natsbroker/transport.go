package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
)

// system is the messaging system the transport reports in driver.Info.
const system = "nats"

// defaultTimeout bounds requests whose context has no deadline: JetStream
// API calls, flushes and asynchronous publish acknowledgements.
const defaultTimeout = 5 * time.Second

// ErrNoStream is returned when a JetStream subscription's destination is
// not stored by any stream. It also matches jetstream.ErrStreamNotFound.
var ErrNoStream = errors.New("natsbroker: no stream stores the subject")

// Transport is a driver.Transport over a NATS connection: core NATS
// subjects and, where configured, JetStream. Create one with New or Connect
// and hand it to broker.New. It is safe for concurrent use.
type Transport struct {
	nc        *natsgo.Conn
	js        jetstream.JetStream
	cfg       config
	closeConn bool
	inbox     string // prefix of temporary reply subjects

	info     atomic.Pointer[driver.Info]
	statusCh chan natsgo.Status

	streamsReady atomic.Bool
	streamsMu    sync.Mutex
	streamsDone  []bool

	errOnce sync.Once // watchSlowConsumers

	closed   atomic.Bool // set under mu
	mu       sync.Mutex
	subs     map[driver.Subscription]struct{}
	coreSubs map[*natsgo.Subscription]*coreSub // for the slow-consumer handler
}

var (
	_ driver.Transport         = (*Transport)(nil)
	_ driver.SubscriptionNamer = (*Transport)(nil)
	_ driver.LoggerSetter      = (*Transport)(nil)
)

// New returns a transport over nc. The caller keeps every connection
// option (TLS, credentials, cluster URLs, reconnect handlers) and ownership
// of nc: Close leaves it open. Like
// every transport constructor it fails only on invalid arguments, with an
// error wrapping broker.ErrInvalid: a nil nc is one, and so is
// WithConnectOptions, which only Connect can apply.
//
// The transport creates nothing on the server until it is used; streams
// declared with WithStream are created before the first JetStream
// operation.
func New(nc *natsgo.Conn, opts ...Option) (*Transport, error) {
	if nc == nil {
		return nil, fmt.Errorf("natsbroker: nil connection: %w", broker.ErrInvalid)
	}
	cfg := newConfig(opts)
	if cfg.connectOptsSet {
		return nil, fmt.Errorf("natsbroker: WithConnectOptions applies to Connect, not to New, whose connection is made already: %w", broker.ErrInvalid)
	}
	return newTransport(nc, cfg), nil
}

// newTransport returns a transport over nc configured by cfg.
func newTransport(nc *natsgo.Conn, cfg config) *Transport {
	t := &Transport{
		nc:    nc,
		cfg:   cfg,
		inbox: natsgo.InboxPrefix,
		subs:  make(map[driver.Subscription]struct{}),

		coreSubs: make(map[*natsgo.Subscription]*coreSub),
	}
	t.streamsDone = make([]bool, len(t.cfg.streams))
	if p := nc.Opts.InboxPrefix; p != "" {
		t.inbox = p + "."
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(defaultTimeout))
	if err != nil {
		js, _ = jetstream.New(nc)
	}
	t.js = js
	t.refreshInfo()
	// Info must be cheap, so the server address is cached and refreshed
	// when the connection (re)connects, possibly to another server of the
	// cluster.
	t.statusCh = nc.StatusChanged(natsgo.CONNECTED, natsgo.CLOSED)
	go func(ch chan natsgo.Status) {
		for st := range ch {
			if st == natsgo.CLOSED {
				return
			}
			t.refreshInfo()
		}
	}(t.statusCh)
	return t
}

// Connect connects to the NATS server at url (a comma-separated list for a
// cluster) with the options given through WithConnectOptions, and returns a
// transport that owns the connection: Close closes it.
//
// A URL without a scheme means nats://, one without a port 4222; the
// schemes are nats, tls, ws and wss. An empty url or list entry, white
// space inside a URL, another scheme, a missing host or a port out of
// range fail with broker.ErrInvalid before anything is dialled. A
// failed connection's error names the URLs tried, credentials redacted.
func Connect(url string, opts ...Option) (*Transport, error) {
	if err := checkServerURLs(url); err != nil {
		return nil, err
	}
	cfg := newConfig(opts)
	nc, err := natsgo.Connect(url, cfg.connectOpts...)
	if err != nil {
		return nil, fmt.Errorf("natsbroker: connect to %s: %w", redactURLs(url), err)
	}
	t := newTransport(nc, cfg)
	t.closeConn = true
	return t, nil
}

// SetLogger implements driver.LoggerSetter: broker.New gives the transport
// its logger, for events the transport handles on its own (headers it could
// not send, consumers it re-established, core NATS messages lost because
// Close gave up waiting). Without it the transport logs to slog.Default().
// It must be called before the transport is used.
func (t *Transport) SetLogger(l *slog.Logger) { t.cfg.logger.Offer(l) }

// Conn returns the NATS connection of the transport.
func (t *Transport) Conn() *natsgo.Conn { return t.nc }

// Info describes the transport: system "nats", the server the connection
// is connected to (as named in its URL, without DNS lookups), the
// connection name as client id, and "ack" as the acknowledgement operation.
func (t *Transport) Info() driver.Info { return *t.info.Load() }

func (t *Transport) refreshInfo() {
	u := t.nc.ConnectedUrl()
	if u == "" {
		if servers := t.nc.Servers(); len(servers) > 0 {
			u = servers[0]
		}
	}
	info := driver.Info{System: system, ClientID: t.nc.Opts.Name, AckOperation: "ack", TemporaryPrefix: t.inbox, Separator: "."}
	if pu, err := url.Parse(u); err == nil {
		info.ServerAddress = pu.Hostname()
		info.ServerPort, _ = strconv.Atoi(pu.Port())
	}
	t.info.Store(&info)
}

// isTemporary reports whether destination is a reply inbox of the
// connection ("_INBOX." or the connection's custom inbox prefix).
func (t *Transport) isTemporary(destination string) bool {
	return strings.HasPrefix(destination, t.inbox)
}

// jetStreamFor reports whether subject (which may be a subscription
// pattern) goes through JetStream by the transport's configuration.
func (t *Transport) jetStreamFor(subject string) bool {
	if t.isTemporary(subject) {
		// Replies go over core NATS even when every subject is
		// JetStream's: no stream stores an inbox.
		return false
	}
	for i := range t.cfg.streams {
		if streamCovers(&t.cfg.streams[i], subject) {
			return true
		}
	}
	if !t.cfg.jetStream {
		return false
	}
	return len(t.cfg.jsSubjects) == 0 || coveredByAny(t.cfg.jsSubjects, subject)
}

// streamCovers reports whether a declared stream stores subject. A stream
// without subjects stores the subject named like the stream.
func streamCovers(cfg *jetstream.StreamConfig, subject string) bool {
	if len(cfg.Subjects) == 0 {
		return subjectCovers(cfg.Name, subject)
	}
	return coveredByAny(cfg.Subjects, subject)
}

// ensureStreams creates the streams declared with WithStream, once each.
// A failure is returned and tried again on the next call.
func (t *Transport) ensureStreams(ctx context.Context) error {
	if len(t.cfg.streams) == 0 || t.streamsReady.Load() {
		return nil
	}
	t.streamsMu.Lock()
	defer t.streamsMu.Unlock()
	for i, cfg := range t.cfg.streams {
		if t.streamsDone[i] {
			continue
		}
		_, err := t.js.CreateStream(ctx, cfg)
		if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("natsbroker: create stream %s: %w", cfg.Name, err)
		}
		t.streamsDone[i] = true
	}
	t.streamsReady.Store(true)
	return nil
}

// Close closes the subscriptions still open (a Broker has closed them all
// already), flushes what was published, and closes the connection if the
// transport owns it (made by Connect). Calling it again
// returns nil.
func (t *Transport) Close(ctx context.Context) error {
	// Closed is set under mu, so that a Subscribe finishing now either
	// registered its subscription before (and it is closed below) or sees
	// the transport closed (and closes it itself).
	t.mu.Lock()
	if !t.closed.CompareAndSwap(false, true) {
		t.mu.Unlock()
		return nil
	}
	subs := make([]driver.Subscription, 0, len(t.subs))
	for s := range t.subs {
		subs = append(subs, s)
	}
	t.mu.Unlock()
	var errs []error
	for _, s := range subs {
		errs = append(errs, s.Close(ctx))
	}
	t.nc.RemoveStatusListener(t.statusCh)
	t.js.CleanupPublisher()
	if !t.nc.IsClosed() {
		if err := flush(ctx, t.nc); err != nil {
			errs = append(errs, fmt.Errorf("natsbroker: flush on close: %w", err))
		}
	}
	if t.closeConn {
		t.nc.Close()
	}
	return errors.Join(errs...)
}

// track registers a subscription Subscribe started, so that Close closes
// it. When the transport was closed while Subscribe ran, it closes the
// subscription instead and fails: nothing is left running behind Close.
func (t *Transport) track(ctx context.Context, s driver.Subscription, dest string) (driver.Subscription, error) {
	t.mu.Lock()
	if !t.closed.Load() {
		t.subs[s] = struct{}{}
		t.mu.Unlock()
		return s, nil
	}
	t.mu.Unlock()
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultTimeout)
	defer cancel()
	err := s.Close(closeCtx)
	return nil, errors.Join(fmt.Errorf("natsbroker: subscribe to %s: transport closed meanwhile: %w", dest, broker.ErrClosed), err)
}

func (t *Transport) untrack(s driver.Subscription) {
	t.mu.Lock()
	delete(t.subs, s)
	if cs, ok := s.(*coreSub); ok {
		delete(t.coreSubs, cs.sub)
	}
	t.mu.Unlock()
}

// usable returns why the transport cannot be used, or nil.
func (t *Transport) usable() error {
	if t.closed.Load() {
		return broker.ErrClosed
	}
	return nil
}

// flush waits until the server has processed everything sent on nc, within
// ctx or defaultTimeout when ctx has no deadline.
func flush(ctx context.Context, nc *natsgo.Conn) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultTimeout)
		defer cancel()
	}
	return nc.FlushWithContext(ctx)
}

// dropHeader reports a header key NATS cannot carry. Only its length is
// logged, never its text: a header line passed as a key
// ("Authorization: Bearer ...") would otherwise put a secret in the log.
func (t *Transport) dropHeader(key string) {
	t.cfg.logger.Warn("natsbroker: dropped a header NATS cannot carry", "key_length", len(key))
}
