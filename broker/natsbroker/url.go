package natsbroker

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode"

	natsgo "github.com/nats-io/nats.go"

	"github.com/tracebus/tracebus/broker"
)

// checkServerURLs checks the server list Connect was given, the way
// nats.go reads it: comma-separated URLs, spaces around the commas
// ignored, a URL without a scheme taken as nats://, a missing port as
// 4222. It refuses what nats.go would fail on later with a less helpful
// error, or silently skip: an empty list or entry, white space inside an
// entry, a scheme nats.go does not speak, a missing host, a port out of
// range. Errors wrap broker.ErrInvalid and show the entry with any
// credentials redacted.
func checkServerURLs(list string) error {
	if strings.TrimSpace(list) == "" {
		return fmt.Errorf("natsbroker: connect: empty server URL (nats.go's default is %s): %w", natsgo.DefaultURL, broker.ErrInvalid)
	}
	for entry := range strings.SplitSeq(list, ",") {
		if err := checkServerURL(strings.TrimSpace(entry)); err != nil {
			return fmt.Errorf("natsbroker: connect: server URL %q: %v: %w", redactURL(entry), err, broker.ErrInvalid)
		}
	}
	return nil
}

func checkServerURL(s string) error {
	switch {
	case s == "":
		return errors.New("empty entry in the list")
	case strings.ContainsFunc(s, unicode.IsSpace):
		return errors.New("contains white space")
	}
	if !strings.Contains(s, "://") {
		s = "nats://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	switch strings.ToLower(u.Scheme) {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("scheme %q: want nats://, tls://, ws:// or wss://", u.Scheme)
	}
	if u.Hostname() == "" {
		return errors.New("missing host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return fmt.Errorf("port %q: want a number from 1 to 65535", p)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return errors.New("empty port")
	}
	return nil
}

// redactURLs returns the comma-separated server list with the credentials
// of every URL replaced, for error messages.
func redactURLs(list string) string {
	entries := strings.Split(list, ",")
	for i, e := range entries {
		entries[i] = redactURL(strings.TrimSpace(e))
	}
	return strings.Join(entries, ",")
}

// redactURL hides the password of a URL, or its user when there is no
// password: NATS reads a lone user as a token.
func redactURL(s string) string {
	at := strings.LastIndex(s, "@")
	if at < 0 {
		return s
	}
	start := 0
	if i := strings.Index(s, "://"); i >= 0 && i < at {
		start = i + len("://")
	}
	user, _, hasPass := strings.Cut(s[start:at], ":")
	if !hasPass {
		return s[:start] + "REDACTED" + s[at:]
	}
	return s[:start] + user + ":REDACTED" + s[at:]
}
