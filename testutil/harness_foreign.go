package testutil

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"

	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/broker/natsbroker"
)

// foreignOptions checks and records the subscription options of other
// transports that a service gives on the harness's memory brokers
// (natsbroker.Stream, kafkabroker.StartOffset, ...). Each is checked by
// its own transport's ValidateSubscription, on a transport made for that
// purpose that never carries a message, so that what the option can be
// checked for without its server (its values, how the options fit
// together and fit the destination) still fails the Subscribe; what only
// the server could tell (that a stream exists) is not checked. Options of
// a transport the harness does not know are ignored unchecked.
type foreignOptions struct {
	tb     testing.TB
	logger *slog.Logger

	mu      sync.Mutex
	ignored map[string][]string // destination → option names
	nats    []*natsbroker.Transport
	kafka   *kafkabroker.Transport
	closers []func()
}

func newForeignOptions(tb testing.TB, logger *slog.Logger) *foreignOptions {
	f := &foreignOptions{tb: tb, logger: logger, ignored: map[string][]string{}}
	tb.Cleanup(f.close)
	return f
}

// check is the foreignopt.Checker of the harness's memory transports.
func (f *foreignOptions) check(spec driver.SubscriptionSpec, foreign []driver.TransportOption) error {
	bySystem := map[string][]driver.TransportOption{}
	var systems []string
	for _, o := range foreign {
		s := o.TransportName()
		if bySystem[s] == nil {
			systems = append(systems, s)
		}
		bySystem[s] = append(bySystem[s], o)
	}
	for _, s := range systems {
		sub := spec
		sub.TransportOptions = bySystem[s]
		if err := f.validate(s, sub); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range foreign {
		name := optionName(o)
		if slices.Contains(f.ignored[spec.Destination], name) {
			continue // ValidateSubscription runs at Subscribe and at start
		}
		f.ignored[spec.Destination] = append(f.ignored[spec.Destination], name)
		f.logger.Info("testutil: subscription option of another transport ignored on the memory transport",
			slog.String("destination", spec.Destination), slog.String("option", name))
	}
	return nil
}

// validate lets the transport of system check spec.
func (f *foreignOptions) validate(system string, spec driver.SubscriptionSpec) error {
	switch system {
	case "nats":
		ts, err := f.natsTransports()
		if err != nil {
			return err
		}
		// Whether a destination is on JetStream depends on the transport's
		// own options, which the harness does not know: the options are
		// fine if they are fine on core NATS or on JetStream.
		errCore := ts[0].ValidateSubscription(spec)
		if errCore == nil {
			return nil
		}
		errJS := ts[1].ValidateSubscription(spec)
		if errJS == nil {
			return nil
		}
		return fmt.Errorf("testutil: checking NATS options on the memory harness: as core NATS: %w; as JetStream: %w", errCore, errJS)
	case "kafka":
		t, err := f.kafkaTransport()
		if err != nil {
			return err
		}
		return t.ValidateSubscription(spec)
	}
	return nil
}

// natsTransports returns a core NATS and a JetStream transport on an
// in-process nats-server that listens on no port, started on first use.
func (f *foreignOptions) natsTransports() ([]*natsbroker.Transport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.nats != nil {
		return f.nats, nil
	}
	srv, err := natsserver.NewServer(&natsserver.Options{DontListen: true, NoLog: true, NoSigs: true})
	if err != nil {
		return nil, fmt.Errorf("testutil: server to check NATS options: %w", err)
	}
	srv.Start()
	f.closers = append(f.closers, srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		return nil, errors.New("testutil: server to check NATS options did not start")
	}
	nc, err := natsgo.Connect("", natsgo.InProcessServer(srv))
	if err != nil {
		return nil, fmt.Errorf("testutil: connect to check NATS options: %w", err)
	}
	f.closers = append(f.closers, nc.Close)
	for _, opts := range [][]natsbroker.Option{nil, {natsbroker.WithJetStream()}} {
		t, err := natsbroker.New(nc, opts...)
		if err != nil {
			return nil, err
		}
		f.closers = append(f.closers, func() { _ = t.Close(context.Background()) })
		f.nats = append(f.nats, t)
	}
	return f.nats, nil
}

// kafkaTransport returns a Kafka transport that is never connected: it
// checks subscriptions without a cluster.
func (f *foreignOptions) kafkaTransport() (*kafkabroker.Transport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.kafka != nil {
		return f.kafka, nil
	}
	t, err := kafkabroker.New()
	if err != nil {
		return nil, err
	}
	f.kafka = t
	f.closers = append(f.closers, func() { _ = t.Close(context.Background()) })
	return t, nil
}

// close releases what the checks started, last first.
func (f *foreignOptions) close() {
	f.mu.Lock()
	closers := f.closers
	f.closers = nil
	f.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
}

// list returns a copy of what was ignored.
func (f *foreignOptions) list() map[string][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string][]string, len(f.ignored))
	for d, names := range maps.All(f.ignored) {
		out[d] = slices.Clone(names)
	}
	return out
}

// optionName names a transport option as its package does:
// "natsbroker.Stream(ORDERS)".
func optionName(o driver.TransportOption) string {
	if s, ok := o.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", o)
}
