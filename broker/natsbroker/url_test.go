package natsbroker_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"

	natsgo "github.com/nats-io/nats.go"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// Hostile server URLs fail Connect with ErrInvalid, naming the URL
// with its credentials redacted, before anything is dialled; the accepted
// spellings of a real server's URL connect and publish.
func TestConnectHostileURLs(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"", "empty server URL"},
		{"  ", "empty server URL"},
		{"nats://h1:4222,", `"": empty entry`},
		{"nats://h1:4222,,nats://h2:4222", `"": empty entry`},
		{"nats://h 1:4222", `"nats://h 1:4222"`},
		{"kafka://h1:9092", `scheme "kafka"`},
		{"http://h1:4222", `scheme "http"`},
		{"nats://:4222", "missing host"},
		{"nats://h1:", "empty port"},
		{"nats://h1:0", `port "0"`},
		{"nats://h1:65536", `port "65536"`},
		{"h1:99999", `port "99999"`},
		{"nats://h1:four", "not a URL"},
		{"nats://user:s3cret@h1:0", `"nats://user:REDACTED@h1:0"`},
		{"nats://s3cret@h1:0", `"nats://REDACTED@h1:0"`},
		{"nats://h1:4222,kafka://user:s3cret@h2", `"kafka://user:REDACTED@h2"`},
		{"nats://h\x00:4222", "not a URL"},
	} {
		tr, err := natsbroker.Connect(tc.url)
		if err == nil {
			tr.Close(context.Background())
			t.Errorf("Connect(%q) succeeded", tc.url)
			continue
		}
		if !errors.Is(err, broker.ErrInvalid) || !strings.HasPrefix(err.Error(), "natsbroker: connect: ") ||
			!strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Connect(%q): %v; want ErrInvalid saying %s, no password", tc.url, err, tc.want)
		}
	}

	srv := natstest.New(t)
	u, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	for _, accepted := range []string{
		srv.URL(),
		u.Host,                              // no scheme
		" " + srv.URL() + " , " + srv.URL(), // a list, spaces around the commas
		"NATS://" + u.Host,
	} {
		tr, err := natsbroker.Connect(accepted)
		if err != nil {
			t.Errorf("Connect(%q): %v", accepted, err)
			continue
		}
		b := broker.New(tr)
		if err := b.Publish(context.Background(), &broker.Message{Destination: "hostile.urls", Body: []byte("x")}); err != nil {
			t.Errorf("publish over Connect(%q): %v", accepted, err)
		}
		b.Close(context.Background())
	}
}

// A connection that fails names the URLs it tried, without the password.
func TestConnectErrorNamesURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	target := "nats://alice:s3cret@" + addr
	_, err = natsbroker.Connect(target, natsbroker.WithConnectOptions(natsgo.MaxReconnects(0)))
	if err == nil {
		t.Fatal("Connect to a closed port succeeded")
	}
	if want := "natsbroker: connect to nats://alice:REDACTED@" + addr + ": "; !strings.HasPrefix(err.Error(), want) ||
		strings.Contains(err.Error(), "s3cret") || !errors.Is(err, natsgo.ErrNoServers) {
		t.Fatalf("Connect: %v; want it to start with %q, wrap nats.ErrNoServers and hide the password", err, want)
	}
}
