package kafkabroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/internal/subopt"
)

// maxPatternLen bounds the length of a Pattern. Topic names have at most
// 249 bytes; a longer expression is a mistake or an attack, and compiling
// it costs memory in proportion.
const maxPatternLen = 1024

// minPatternRefresh bounds how often a pattern subscription lists the
// topics, whatever WithMetadataMaxAge says.
const minPatternRefresh = 10 * time.Millisecond

// Pattern makes the subscription's destination a regular expression over
// topic names instead of a topic (FastStream's pattern=, the Java client's
// subscribe(Pattern)). The expression has Go's syntax (package regexp, RE2:
// matching takes linear time whatever the expression) and must match the
// whole topic name: "orders-.*" matches "orders-eu" but not "old-orders-eu".
// Internal topics (__consumer_offsets) never match. An expression that does
// not compile, or is longer than 1024 bytes, makes Subscribe fail with
// broker.ErrInvalid, quoting it. Partitions cannot be combined with it.
//
// The subscription lists the cluster's topics from the transport's metadata,
// which kafka-go refreshes at least every WithMetadataMaxAge (6s by
// default), and looks at the list every quarter of that: a topic created
// later is read within about 1.25 times WithMetadataMaxAge, a deleted one is
// given up as quickly.
//
// With broker.Group, the group consumes every matching topic: its
// partitions are shared among the members as for one topic, and offsets
// are committed per topic and partition. When the matching topics change,
// the member finishes and commits its deliveries in flight, leaves the
// group and joins it again with the new list, so the group rebalances
// (where it has no committed offset, a new topic starts at StartOffset,
// kafka.FirstOffset by default). Until a topic matches, the subscription
// waits.
//
// Without a group, every partition of every matching topic is read: the
// topics found at Subscribe from StartOffset (by default their end, as for
// one topic), topics that appear later from their first offset, so that
// nothing published to them is missed. Each topic gets its own
// broker.Concurrency lanes. Nothing is committed.
//
// Each message's Destination is its topic; telemetry names spans after the
// pattern and records the topic as messaging.destination.name and the
// pattern as messaging.destination.template.
func Pattern() broker.SubscribeOption {
	return broker.TransportOption(subopt.Option[subConfig]{
		Package: "kafkabroker", System: system,
		Name:    "Pattern()",
		Pattern: true,
		Apply:   func(c *subConfig) { c.isPattern = true },
	})
}

// compilePattern compiles a Pattern, anchored at both ends. The expression
// is compiled on its own first: anchoring "a)|(b" as "^(?:a)|(b)$" would
// compile, and match more than intended.
func compilePattern(expr string) (*regexp.Regexp, error) {
	switch {
	case expr == "":
		return nil, fmt.Errorf("kafkabroker: subscribe: empty pattern: %w", broker.ErrInvalid)
	case len(expr) > maxPatternLen:
		return nil, fmt.Errorf("kafkabroker: subscribe pattern %q…: %d bytes, at most %d: %w", expr[:64], len(expr), maxPatternLen, broker.ErrInvalid)
	}
	if _, err := regexp.Compile(expr); err != nil {
		return nil, fmt.Errorf("kafkabroker: subscribe pattern %q: %v: %w", expr, err, broker.ErrInvalid)
	}
	re, err := regexp.Compile(`^(?:` + expr + `)$`)
	if err != nil {
		return nil, fmt.Errorf("kafkabroker: subscribe pattern %q: %v: %w", expr, err, broker.ErrInvalid)
	}
	return re, nil
}

// patternRefresh is how often a pattern subscription lists the topics.
func (t *Transport) patternRefresh() time.Duration {
	return max(t.cfg.metadataMaxAge/4, minPatternRefresh)
}

// matchingTopics lists, sorted, the topics re matches, from the metadata
// kafka-go caches (refreshed every WithMetadataMaxAge). A topic whose
// metadata carries an error (no leader yet) is listed: it exists.
func (t *Transport) matchingTopics(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	md, err := t.client.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		return nil, fmt.Errorf("kafkabroker: list topics: %w", err)
	}
	var out []string
	for _, tm := range md.Topics {
		if !tm.Internal && re.MatchString(tm.Name) {
			out = append(out, tm.Name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// watchTopics closes changed when the topics the subscription's pattern
// matches are no longer current, and returns; or returns when ctx is done.
func (s *subscription) watchTopics(ctx context.Context, current []string, changed chan<- struct{}) {
	s.followTopics(ctx, func(topics []string) bool {
		if slices.Equal(topics, current) {
			return true
		}
		s.log(slog.LevelInfo, "kafkabroker: the topics the pattern matches changed, joining the group again",
			slog.Any("topics", topics))
		close(changed)
		return false
	})
}

// followTopics calls fn with the topics the subscription's pattern matches,
// every pattern refresh, until fn returns false, the subscription stops or
// ctx is done.
func (s *subscription) followTopics(ctx context.Context, fn func(topics []string) bool) {
	tick := time.NewTicker(s.t.patternRefresh())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.stop:
			return
		case <-tick.C:
		}
		topics, err := s.t.matchingTopics(ctx, s.pattern)
		if err != nil {
			s.log(slog.LevelDebug, "kafkabroker: list topics failed", slog.Any("error", err))
			continue
		}
		if !fn(topics) {
			return
		}
	}
}

// startPattern starts a pattern subscription without a group: every
// partition of the matching topics from start, then every topic that
// matches later from its first offset.
func (s *subscription) startPattern(ctx context.Context, start int64) error {
	topics, err := s.t.matchingTopics(ctx, s.pattern)
	if err != nil {
		return fmt.Errorf("kafkabroker: subscribe pattern %q: %w", s.spec.Destination, err)
	}
	initial := make(map[string][]part, len(topics))
	for _, topic := range topics {
		parts, err := s.t.partitionsAt(ctx, topic, start, nil)
		if errors.Is(err, ErrUnknownTopic) {
			continue // deleted meanwhile, or without partitions yet: the watch sees it
		}
		if err != nil {
			return err
		}
		initial[topic] = parts
	}
	if err := s.t.addSub(s); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancelRun = cancel
	go s.readTopics(runCtx, initial)
	return nil
}

// readTopics reads the partitions of each topic in initial, and of every
// topic that matches the pattern later, each topic by its own lanes, until
// the subscription closes. It stops reading a topic that is deleted.
func (s *subscription) readTopics(ctx context.Context, initial map[string][]part) {
	defer close(s.done)
	var wg sync.WaitGroup
	stops := make(map[string]chan struct{}, len(initial))
	read := func(topic string, parts []part) {
		stop := make(chan struct{})
		stops[topic] = stop
		wg.Go(func() { s.consume(stop, parts, nil) })
	}
	for topic, parts := range initial {
		read(topic, parts)
	}
	s.followTopics(ctx, func(topics []string) bool {
		for _, topic := range topics {
			if _, ok := stops[topic]; ok {
				continue
			}
			parts, err := s.t.partitionsAt(ctx, topic, kafka.FirstOffset, nil)
			if err != nil {
				continue // no partitions or leader yet: next time
			}
			s.log(slog.LevelInfo, "kafkabroker: reading a new topic the pattern matches", slog.String("new_topic", topic))
			read(topic, parts)
		}
		for topic, stop := range stops {
			if !slices.Contains(topics, topic) {
				s.log(slog.LevelInfo, "kafkabroker: topic deleted, no longer read", slog.String("deleted_topic", topic))
				close(stop)
				delete(stops, topic)
			}
		}
		return true
	})
	// The subscription stopped (Close cancels ctx after closing s.stop).
	for _, stop := range stops {
		close(stop)
	}
	wg.Wait() // consume returns early when the subscription is abandoned
}
