package kafkabroker_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	kafka "github.com/segmentio/kafka-go"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/kafkabroker"
)

// blackHole is a listener that accepts connections and never answers: a
// broker that is up at the TCP level but hung, or a firewall that lets the
// handshake through. Close ends it and every connection it accepted.
type blackHole struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	done  chan struct{}
}

func newBlackHole(t *testing.T) *blackHole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &blackHole{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
		}
	}()
	t.Cleanup(h.Close)
	return h
}

func (h *blackHole) Addr() string { return h.ln.Addr().String() }

func (h *blackHole) Close() {
	_ = h.ln.Close()
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		_ = c.Close()
	}
	h.conns = nil
}

// refusedAddr returns a local address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// returns runs fn and fails the test if it has not returned within the
// package's wait bound: a guard against a hang, not a timing assertion.
func returns[T any](t *testing.T, what string, fn func() T) T {
	t.Helper()
	got := make(chan T, 1)
	go func() { got <- fn() }()
	select {
	case v := <-got:
		return v
	case <-time.After(wait):
		t.Fatalf("%s did not return within %v", what, wait)
		panic("unreachable")
	}
}

// TestBrokersUnreachableAtStart points a transport at a seed broker that
// refuses connections and at one that accepts them but never answers. With
// a dial timeout configured and no deadline in ctx, publishing and
// subscribing without a group fail with an error that names the operation
// and wraps the network error; Ping reports broker.ErrUnavailable. A group
// subscription waits for its topic (that is its documented behaviour, so
// that services may start before their topics exist) and Close still ends
// it. Nothing hangs and no goroutine is left.
func TestBrokersUnreachableAtStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr func(*testing.T) string
		want error
	}{
		{"refused", refusedAddr, syscall.ECONNREFUSED},
		{"no answer", func(t *testing.T) string { return newBlackHole(t).Addr() }, os.ErrDeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := tc.addr(t)
			leaks := goleak.IgnoreCurrent()
			tr, err := kafkabroker.New(
				kafkabroker.WithSeedBrokers(addr),
				kafkabroker.WithDialTimeout(200*time.Millisecond),
				kafkabroker.WithWriterConfig(func(w *kafka.Writer) {
					w.WriteTimeout = 500 * time.Millisecond
					w.MaxAttempts = 2
				}),
			)
			if err != nil {
				t.Fatal(err)
			}
			b := broker.New(tr, broker.WithLogger(slog.New(slog.DiscardHandler)))

			err = returns(t, "Publish", func() error {
				return b.Publish(context.Background(), &broker.Message{Destination: "orders", Body: []byte("a")})
			})
			if err == nil || !errors.Is(err, tc.want) {
				t.Errorf("Publish: got %v, want an error wrapping %v", err, tc.want)
			}

			nop := func(context.Context, *broker.Message) error { return nil }
			if err := b.Subscribe("orders", nop, broker.Group("billing")); err != nil {
				t.Fatal(err)
			}
			if err := returns(t, "Start", func() error { return b.Start(context.Background()) }); err != nil {
				t.Fatalf("Start with a group subscription: %v", err)
			}
			err = returns(t, "Subscribe", func() error { return b.Subscribe("audit", nop) })
			if err == nil || !errors.Is(err, tc.want) {
				t.Errorf("Subscribe without a group: got %v, want an error wrapping %v", err, tc.want)
			}

			err = returns(t, "Ping", func() error {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				return b.Ping(ctx)
			})
			if !errors.Is(err, broker.ErrUnavailable) {
				t.Errorf("Ping: got %v, want broker.ErrUnavailable", err)
			}

			err = returns(t, "Close", func() error {
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				return b.Close(ctx)
			})
			if err != nil {
				t.Errorf("Close: %v", err)
			}
			goleak.VerifyNone(t, leaks)
		})
	}
}
