package kafkabroker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	kafka "github.com/segmentio/kafka-go"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"

	"github.com/tracebus/tracebus/broker/internal/wait"
)

// partitionCache holds the partition counts of topics, each for the
// metadata max age, so that publishing to an explicit partition does not ask for
// metadata every time.
type partitionCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]partitionCount
}

type partitionCount struct {
	n       int
	expires time.Time
}

func (c *partitionCache) get(topic string, now time.Time) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[topic]
	if !ok || now.After(e.expires) {
		return 0, false
	}
	return e.n, true
}

func (c *partitionCache) put(topic string, n int, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]partitionCount)
	}
	for k, e := range c.m { // keep the map as small as the topics in use
		if now.After(e.expires) {
			delete(c.m, k)
		}
	}
	c.m[topic] = partitionCount{n: n, expires: now.Add(c.ttl)}
}

// partitionCount returns the number of partitions of topic, from the
// transport's cache or, when it has none younger than the metadata max
// age, from the
// metadata the writer balances with, so that a partition accepted here is
// one the writer can route.
func (t *Transport) partitionCount(ctx context.Context, topic string) (int, error) {
	if n, ok := t.partitions.get(topic, time.Now()); ok {
		return n, nil
	}
	res, err := t.kt.RoundTrip(ctx, t.writer.Addr, &metadataAPI.Request{
		TopicNames: []string{topic},
		// A request that allows auto-creation is also the only way to make
		// kafka-go look up a topic missing from its cache; it is made only
		// when the user asked for topics to be created.
		AllowAutoTopicCreation: t.autoCreate(),
	})
	if err != nil {
		return 0, err
	}
	for _, tm := range res.(*metadataAPI.Response).Topics {
		if tm.Name != topic {
			continue
		}
		if tm.ErrorCode != 0 {
			return 0, kafka.Error(tm.ErrorCode)
		}
		t.partitions.put(topic, len(tm.Partitions), time.Now())
		return len(tm.Partitions), nil
	}
	return 0, kafka.UnknownTopicOrPartition
}

// autoCreate reports whether WithAutoCreateTopics was given.
func (t *Transport) autoCreate() bool { return t.cfg.createPartitions != 0 }

// awaitTopic runs op until it no longer fails because its topic is unknown,
// for at most the metadata max age or until ctx is done. Without WithAutoCreateTopics
// the transport never asks the broker about topics missing from kafka-go's
// metadata cache (such a request would create them where the broker allows
// it), so a topic created by someone else a moment ago becomes known only
// at the cache's next refresh. Like the Java producer waiting for metadata,
// publishing waits for that refresh instead of failing.
func (t *Transport) awaitTopic(ctx context.Context, op func() error) error {
	err := op()
	if t.autoCreate() {
		return err
	}
	deadline := time.Now().Add(t.cfg.metadataMaxAge)
	for attempt := 1; errors.Is(err, kafka.UnknownTopicOrPartition) && time.Now().Before(deadline); attempt++ {
		if !wait.Sleep(wait.Retry(attempt), ctx.Done()) {
			return fmt.Errorf("%w: %w", err, ctx.Err())
		}
		unknown := err
		if err = op(); ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			// Cancelled while waiting: say what was waited for.
			return fmt.Errorf("%w: %w", unknown, err)
		}
	}
	return err
}
