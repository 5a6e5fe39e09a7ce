package kafkabroker

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// defaultPort is the port of a seed broker given without one.
const defaultPort = "9092"

// maxNameLen is Kafka's limit on topic names; client ids and group ids
// are held to it too, as they appear in the same logs and metrics.
const maxNameLen = 249

// brokerAddrs splits and checks seed broker addresses. Each value may be a
// comma-separated list ("h1:9092,h2:9092", the form of a command-line flag
// or of Kafka's own bootstrap.servers); spaces around a comma are ignored.
// Every entry must be host:port or a bare host (port 9092); an IPv6 host
// is written in brackets. A URL with a scheme is refused rather than
// stripped: "SASL_SSL://h:9093" names a security protocol that WithTLS and
// WithSASL configure, and dropping it silently would connect in the clear.
func brokerAddrs(values []string) ([]string, error) {
	if len(values) == 0 {
		return nil, errors.New("no seed brokers")
	}
	var out []string
	for _, v := range values {
		for entry := range strings.SplitSeq(v, ",") {
			addr, err := brokerAddr(strings.TrimSpace(entry))
			if err != nil {
				if v != entry {
					return nil, fmt.Errorf("broker address %q in %q: %w", entry, v, err)
				}
				return nil, fmt.Errorf("broker address %q: %w", entry, err)
			}
			out = append(out, addr)
		}
	}
	return out, nil
}

// brokerAddr checks one seed broker address and returns it as host:port.
func brokerAddr(s string) (string, error) {
	switch {
	case s == "":
		return "", errors.New("empty")
	case strings.Contains(s, "://"):
		return "", errors.New(`a URL: write host:port without a scheme (TLS and SASL are the options WithTLS and WithSASL)`)
	case strings.ContainsFunc(s, unicode.IsSpace):
		return "", errors.New("contains white space")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		bracketed := strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]")
		if strings.Contains(s, ":") && !bracketed {
			return "", errors.New("want host:port (an IPv6 host in brackets: [::1]:9092)")
		}
		host, port = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), defaultPort
	}
	if err := checkHost(host); err != nil {
		return "", err
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", fmt.Errorf("port %q: want a number from 1 to 65535", port)
	}
	return net.JoinHostPort(host, port), nil
}

// checkHost accepts an IP address or a DNS name (letters, digits, '-' and
// '_' in dot-separated labels of 1 to 63 characters).
func checkHost(host string) error {
	if host == "" {
		return errors.New("missing host")
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	if len(host) > 253 {
		return errors.New("host name longer than 253 characters")
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(host, "."), ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("host %q: empty or overlong label", host)
		}
		for _, r := range label {
			if !(r == '-' || r == '_' || r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r))) {
				return fmt.Errorf("host %q: character %q", host, r)
			}
		}
	}
	return nil
}

// nameKind says which of Kafka's naming rules checkName applies.
type nameKind int

const (
	// topicName: Kafka's topic rules, 1 to 249 characters of ASCII
	// letters, digits, '.', '_' and '-', and neither "." nor "..".
	topicName nameKind = iota
	// idName: client and group ids, which Kafka takes as any string: 1 to
	// 249 bytes of UTF-8 without control characters and without white
	// space at either end (almost always a copy-and-paste slip).
	idName
)

// checkName checks a name the transport sends to the brokers (a topic, a
// client id, a group id).
func checkName(kind nameKind, s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > maxNameLen:
		return fmt.Errorf("%d bytes, more than Kafka's %d", len(s), maxNameLen)
	}
	if kind == topicName {
		if s == "." || s == ".." {
			return errors.New(`"." and ".." are not topic names`)
		}
		for _, r := range s {
			if !(r == '.' || r == '_' || r == '-' || r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r))) {
				return fmt.Errorf("character %q: a topic name takes ASCII letters, digits, '.', '_' and '-'", r)
			}
		}
		return nil
	}
	if !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return errors.New("not UTF-8 text or contains control characters")
	}
	if strings.TrimSpace(s) != s {
		return errors.New("white space at either end")
	}
	return nil
}
