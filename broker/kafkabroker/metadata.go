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

// checkTopic fails fast when topic does not exist and the transport does
// not create topics: without it, kafka-go's writer would wait for its
// metadata to learn the topic and then retry the produce, some seconds per
// attempt, and fail with a bare "Unknown Topic Or Partition". The error
// names the topic and the remedy, and wraps ErrUnknownTopic and
// kafka.UnknownTopicOrPartition. When the cluster cannot be asked, checkTopic
// returns nil and the write reports what is wrong.
func (t *Transport) checkTopic(ctx context.Context, topic string) error {
	if exists, err := t.lookupTopic(ctx, topic); exists || err != nil {
		return nil
	}
	return fmt.Errorf("kafkabroker: publish %s: %w: create the topic, or let the transport create missing topics with kafkabroker.WithAutoCreateTopics (%w)",
		topic, ErrUnknownTopic, kafka.UnknownTopicOrPartition)
}

// lookupTopic reports whether topic exists: from the transport's partition
// cache, else from kafka-go's metadata cache, else, when that says the
// topic is missing, from the cluster itself, once, with a request that
// cannot create it (DescribeConfigs, as a Metadata request would create
// the topic where the brokers allow that). A topic found there was created
// after kafka-go's last metadata refresh: lookupTopic then makes kafka-go
// refresh its cache for it, so the write that follows does not wait for
// the next periodic refresh (WithMetadataMaxAge). err is set when the
// answer is unknown.
func (t *Transport) lookupTopic(ctx context.Context, topic string) (exists bool, err error) {
	if _, ok := t.partitions.get(topic, time.Now()); ok {
		return true, nil
	}
	_, err = t.partitionCount(ctx, topic)
	if !errors.Is(err, kafka.UnknownTopicOrPartition) {
		return err == nil, err
	}
	dc, err := t.client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{
		Resources: []kafka.DescribeConfigRequestResource{{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic}},
	})
	switch {
	case err != nil:
		return false, err
	case len(dc.Resources) != 1:
		return false, fmt.Errorf("kafkabroker: describe topic %s: %d resources in the answer", topic, len(dc.Resources))
	case errors.Is(dc.Resources[0].Error, kafka.UnknownTopicOrPartition):
		return false, nil
	case dc.Resources[0].Error != nil:
		return false, dc.Resources[0].Error
	}
	// The topic exists, so allowing auto-creation creates nothing; it is
	// what makes kafka-go ask the brokers instead of its cache.
	if _, err := t.kt.RoundTrip(ctx, t.writer.Addr, &metadataAPI.Request{TopicNames: []string{topic}, AllowAutoTopicCreation: true}); err != nil {
		return true, err
	}
	return true, nil
}
