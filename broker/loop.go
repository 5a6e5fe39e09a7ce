package broker

import (
	"fmt"
	"regexp"

	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/internal/subject"
)

// checkDeadLetterLoop fails a subscription whose own pattern matches its
// dead-letter destination: every dead letter would be delivered back to
// the handler that rejected it, which would reject it again, for ever.
// Matching follows NATS subject wildcards; a Kafka topic holds none, so
// there it is equality.
func checkDeadLetterLoop(cfg *subConfig) error {
	pattern := cfg.spec.Destination
	if cfg.deadLetter == "" || readsElsewhere(cfg) || !patternMatches(cfg, cfg.deadLetter) {
		return nil
	}
	return fmt.Errorf("tracebus: subscribe %s: dead-letter destination %s matches the subscription's own pattern, "+
		"so every dead letter would come back to the handler that rejected it; choose a destination outside %s: %w",
		pattern, cfg.deadLetter, pattern, ErrInvalid)
}

// checkPublishToLoop fails a HandleResult subscription whose own pattern
// matches the destination of one of its PublishTo publishers on the same
// messaging system: every result would be delivered back to the handler,
// whose result would be published again, for ever.
func (b *Broker) checkPublishToLoop(cfg *subConfig, pubs []ResultPublisher) error {
	pattern := cfg.spec.Destination
	if readsElsewhere(cfg) {
		return nil
	}
	for _, p := range pubs {
		dest := p.destination()
		if !patternMatches(cfg, dest) || !b.sharesDestinations(p.owner()) {
			continue
		}
		return fmt.Errorf("tracebus: subscribe %s: PublishTo destination %s matches the subscription's own pattern, "+
			"so every result would come back to the handler that produced it; choose a destination outside %s: %w",
			pattern, dest, pattern, ErrInvalid)
	}
	return nil
}

// patternMatches reports whether the subscription of cfg listens to dest:
// by NATS subject wildcards (a Kafka topic has none, so there it is
// equality), or, for a pattern the transport matches itself
// (kafkabroker.Pattern), by that regular expression over the whole name.
func patternMatches(cfg *subConfig, dest string) bool {
	if transportPattern(cfg.spec) {
		re, err := regexp.Compile(`^(?:` + cfg.spec.Destination + `)$`)
		return err == nil && re.MatchString(dest)
	}
	return subject.Match(cfg.spec.Destination, dest)
}

// readsElsewhere reports whether a transport option of cfg says that the
// subscription does not read the transport's destinations (see
// driver.TransportOption).
func readsElsewhere(cfg *subConfig) bool {
	for _, o := range cfg.spec.TransportOptions {
		if e, ok := o.(interface{ ReadsElsewhere() bool }); ok && e.ReadsElsewhere() {
			return true
		}
	}
	return false
}

// sharesDestinations reports whether a message published through o can
// reach b's subscriptions: o is b, or o's transport is connected to the
// same server as b's.
func (b *Broker) sharesDestinations(o *Broker) bool {
	if o == b {
		return true
	}
	if s, ok := b.transport.(driver.SharedDestinations); ok {
		return s.SharesDestinations(o.transport)
	}
	bi, oi := b.transport.Info(), o.transport.Info()
	return bi.System == oi.System && bi.ServerAddress != "" &&
		bi.ServerAddress == oi.ServerAddress && bi.ServerPort == oi.ServerPort
}
