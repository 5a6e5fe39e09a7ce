package kafkabroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/internal/subopt"
	"github.com/tracebus/tracebus/broker/internal/wait"
)

type subConfig struct {
	startOffset int64
	startSet    bool  // StartOffset was given
	partitions  []int // Partitions: read only these, without a group
	isPattern   bool  // Pattern: the destination is a regular expression
	pattern     *regexp.Regexp
}

// StartOffset sets where this subscription starts reading: kafka.FirstOffset,
// kafka.LastOffset or, for a subscription without a group, an offset (0 or
// more) every partition it reads starts at; other values make Subscribe fail
// with broker.ErrInvalid. Give it once on a broker.Router to set it for
// every subscription of the router.
//
// A group subscription uses it only for partitions where the group has no
// committed offset; its default is kafka.FirstOffset (or the StartOffset a
// WithConsumerGroupConfig hook sets), so that a new group misses nothing
// published after Subscribe returned, even while it is still joining. A
// subscription without a group uses it always; its default is
// kafka.LastOffset taken when Subscribe is called, so it receives exactly
// the messages published after Subscribe returned.
func StartOffset(offset int64) broker.SubscribeOption {
	return broker.TransportOption(subopt.Option[subConfig]{
		Package: "kafkabroker", System: system,
		Name:  fmt.Sprintf("StartOffset(%d)", offset),
		Apply: func(c *subConfig) { c.startOffset, c.startSet = offset, true },
	})
}

// subscription reads spec's transport options and checks them.
func (t *Transport) subscription(spec *driver.SubscriptionSpec) (subConfig, error) {
	var sc subConfig
	if err := subopt.Apply("kafkabroker", system, spec, &sc); err != nil {
		return sc, err
	}
	d := spec.Destination
	switch {
	case sc.isPattern:
		re, err := compilePattern(d)
		if err != nil {
			return sc, err
		}
		sc.pattern = re
	case d != "":
		if err := checkName(topicName, d); err != nil {
			return sc, fmt.Errorf("kafkabroker: subscribe %q: topic name: %v: %w", d, err, broker.ErrInvalid)
		}
	}
	if g := spec.Group; g != "" {
		if err := checkName(idName, g); err != nil {
			return sc, fmt.Errorf("kafkabroker: subscribe %s: group %q: %v: %w", d, g, err, broker.ErrInvalid)
		}
	}
	if err := checkPartitions(spec, &sc); err != nil {
		return sc, err
	}
	if sc.startSet {
		switch s := sc.startOffset; {
		case s < 0 && s != kafka.FirstOffset && s != kafka.LastOffset:
			return sc, fmt.Errorf("kafkabroker: subscribe %s: start offset %d: %w", d, s, broker.ErrInvalid)
		case s >= 0 && spec.Group != "":
			return sc, fmt.Errorf("kafkabroker: subscribe %s: start offset %d: a group starts at kafka.FirstOffset or kafka.LastOffset where it has no committed offset: %w", d, s, broker.ErrInvalid)
		}
	}
	if d == "" {
		return sc, nil
	}
	// kafka-go panics in NewReader on settings it rejects, and readers are
	// made later, in goroutines: check what the hooks made now.
	rc := t.readerConfig(d, 0)
	if err := rc.Validate(); err != nil {
		return sc, fmt.Errorf("kafkabroker: subscribe %s: reader config: %v: %w", d, err, broker.ErrInvalid)
	}
	if rc.CommitInterval < 0 {
		return sc, fmt.Errorf("kafkabroker: subscribe %s: reader config: commit interval %v: must not be negative: %w", d, rc.CommitInterval, broker.ErrInvalid)
	}
	if spec.Group != "" {
		gc := t.groupConfig(*spec, []string{d}, sc.groupStart())
		if err := gc.Validate(); err != nil {
			return sc, fmt.Errorf("kafkabroker: subscribe %s as group %s: consumer group config: %v: %w", d, spec.Group, err, broker.ErrInvalid)
		}
	}
	return sc, nil
}

// groupStart returns the StartOffset given, or 0 for the default, for a
// group subscription (where an offset of 0 or more is refused).
func (sc subConfig) groupStart() int64 {
	if !sc.startSet {
		return 0
	}
	return sc.startOffset
}

// ValidateSubscription implements driver.Transport: it rejects
// options of other transports, invalid start offsets, and destinations and
// groups that are not valid Kafka topic names and group ids, when
// broker.Broker.Subscribe is called.
func (t *Transport) ValidateSubscription(spec driver.SubscriptionSpec) error {
	sc, err := t.subscription(&spec)
	if err == nil && spec.Pull && sc.pattern != nil {
		err = errPullPattern(spec.Destination)
	}
	return err
}

func errPullPattern(pattern string) error {
	return fmt.Errorf("kafkabroker: pull from %q: a Pattern subscription cannot be pulled; pull from each topic: %w", pattern, broker.ErrInvalid)
}

// Subscribe starts consuming spec.Destination, a topic name, or with
// Pattern every topic the regular expression matches (see Pattern for how
// topics that appear later are found).
//
// With spec.Group, the subscription is a member of that Kafka consumer
// group: the group's partitions are shared among its members, offsets are
// committed to the group when a delivery is acknowledged or terminated, and
// a member that leaves or crashes hands its partitions to the others.
// Before a rebalance takes a partition away, the member finishes the
// deliveries in flight and commits them, so a message is processed twice
// only when a member dies or overruns the rebalance timeout. When the topic
// does not exist yet, the subscription waits for it (looking every
// partition watch interval) before it joins the group.
//
// Without a group, the subscription reads every partition of the topic by
// itself and commits nothing: each such subscription receives every
// message, by default those published after Subscribe returned (see
// StartOffset), of every partition or of those Partitions names. The topic
// must exist, or Subscribe fails with ErrUnknownTopic; partitions added
// later are not read.
//
// Messages of one partition are delivered one delivery at a time, in
// offset order, and a Nak retries the same messages in place after the
// delay, so a partition never moves past an unsettled message. Up to
// spec.Concurrency deliveries run at once, each for a different set of
// partitions: partitions are spread over Concurrency lanes, and a slow
// message holds back the partitions that share its lane.
//
// A batch subscription collects up to spec.BatchSize messages, from any
// partitions of one lane, waiting at most spec.BatchWait after the first;
// acknowledging the batch commits the highest offset of every partition in
// it.
func (t *Transport) Subscribe(ctx context.Context, spec driver.SubscriptionSpec, deliver driver.DeliverFunc) (driver.Subscription, error) {
	if t.isClosed() {
		return nil, broker.ErrClosed
	}
	if spec.Destination == "" {
		return nil, broker.ErrInvalid
	}
	if deliver == nil {
		return nil, broker.ErrInvalid
	}
	sc, err := t.subscription(&spec)
	if err != nil {
		return nil, err
	}
	spec.Concurrency = max(spec.Concurrency, 1)
	if spec.Batch {
		// A broker always sends a complete spec; a caller of the
		// transport alone gets batches of one, delivered at once.
		spec.BatchSize = max(1, spec.BatchSize)
		spec.BatchWait = max(time.Millisecond, spec.BatchWait)
	}
	if t.cfg.createPartitions != 0 && sc.pattern == nil {
		if err := t.ensureTopic(ctx, spec.Destination); err != nil {
			return nil, err
		}
	}

	s := &subscription{
		t:       t,
		spec:    spec,
		pattern: sc.pattern,
		deliver: deliver,
		ctx:     ctx,
		stop:    make(chan struct{}),
		abandon: make(chan struct{}),
		done:    make(chan struct{}),
	}
	if spec.Group == "" {
		start := int64(kafka.LastOffset)
		if sc.startSet {
			start = sc.startOffset
		}
		if sc.pattern != nil {
			if err := s.startPattern(ctx, start); err != nil {
				return nil, err
			}
			return s, nil
		}
		parts, err := t.partitionsAt(ctx, spec.Destination, start, sc.partitions)
		if err != nil {
			return nil, err
		}
		if err := t.addSub(s); err != nil {
			return nil, err
		}
		go func() {
			defer close(s.done)
			s.consume(s.stop, parts, nil)
		}()
		return s, nil
	}

	gc := t.groupConfig(spec, []string{spec.Destination}, sc.groupStart())
	if err := gc.Validate(); err != nil { // fills in kafka-go's defaults
		return nil, fmt.Errorf("kafkabroker: subscribe %s as group %s: %w", spec.Destination, spec.Group, err)
	}
	if err := t.addSub(s); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancelRun = cancel
	go s.runGroup(runCtx, gc)
	return s, nil
}

// groupConfig is the configuration of a group subscription to topics: the
// transport's defaults, then the WithConsumerGroupConfig hooks, then what
// the transport relies on. start, when not 0, is the subscription's
// StartOffset, which wins over the hooks.
func (t *Transport) groupConfig(spec driver.SubscriptionSpec, topics []string, start int64) kafka.ConsumerGroupConfig {
	gc := kafka.ConsumerGroupConfig{
		Dialer:                t.dialer,
		WatchPartitionChanges: true,
		StartOffset:           kafka.FirstOffset,
		ErrorLogger:           t.logger,
	}
	for _, fn := range t.cfg.groupHooks {
		fn(&gc)
	}
	gc.ID = spec.Group
	gc.Brokers = t.cfg.brokers
	gc.Topics = topics
	if start != 0 {
		gc.StartOffset = start
	}
	return gc
}

// partitionsAt lists the partitions of topic to read, all of them or those
// in only, with the offset to start each at. LastOffset is resolved now, so
// that messages published after Subscribe returns are delivered even if a
// reader connects later. A partition in only that the topic does not have
// is an error wrapping ErrUnknownPartition.
func (t *Transport) partitionsAt(ctx context.Context, topic string, start int64, only []int) ([]part, error) {
	n, err := t.partitionCount(ctx, topic)
	switch {
	case errors.Is(err, kafka.UnknownTopicOrPartition):
		return nil, fmt.Errorf("kafkabroker: subscribe %s: %w (%w)", topic, ErrUnknownTopic, err)
	case err != nil:
		return nil, fmt.Errorf("kafkabroker: subscribe %s: metadata: %w", topic, err)
	case n == 0:
		return nil, fmt.Errorf("kafkabroker: subscribe %s: %w", topic, ErrUnknownTopic)
	}
	var parts []part
	if only == nil {
		parts = make([]part, n)
		for i := range parts {
			parts[i] = part{topic: topic, id: i, offset: start}
		}
	} else {
		parts = make([]part, len(only))
		for i, id := range only {
			if id >= n {
				return nil, fmt.Errorf("kafkabroker: subscribe %s: partition %d: the topic has %d partitions (0 to %d): %w", topic, id, n, n-1, ErrUnknownPartition)
			}
			parts[i] = part{topic: topic, id: id, offset: start}
		}
	}
	if start != kafka.LastOffset {
		return parts, nil
	}
	reqs := make([]kafka.OffsetRequest, len(parts))
	for i, p := range parts {
		reqs[i] = kafka.LastOffsetOf(p.id)
	}
	lo, err := t.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("kafkabroker: subscribe %s: list offsets: %w", topic, err)
	}
	last := make(map[int]int64, len(parts))
	for _, po := range lo.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("kafkabroker: subscribe %s: list offsets of partition %d: %w", topic, po.Partition, po.Error)
		}
		last[po.Partition] = po.LastOffset
	}
	for i := range parts {
		off, ok := last[parts[i].id]
		if !ok {
			return nil, fmt.Errorf("kafkabroker: subscribe %s: no offset for partition %d", topic, parts[i].id)
		}
		parts[i].offset = off
	}
	return parts, nil
}

// defaultTopicWait is how often a group subscription looks for its missing
// topic when the group's PartitionWatchInterval is not set (kafka-go's
// partition watch default).
const defaultTopicWait = 5 * time.Second

// subscription is one running subscription; it implements
// driver.Subscription.
type subscription struct {
	t       *Transport
	spec    driver.SubscriptionSpec
	pattern *regexp.Regexp // Pattern's: spec.Destination matches topics
	deliver driver.DeliverFunc
	ctx     context.Context

	cancelRun context.CancelFunc // stops a group subscription's runGroup

	stop    chan struct{} // closed by Close: take no new messages
	abandon chan struct{} // closed when Close gives up waiting
	done    chan struct{} // closed when nothing is delivered or committed any more

	closeOnce sync.Once
	closeErr  error
	closed    chan struct{}
}

// runGroup waits for the topic (with Pattern, for a topic that matches),
// joins the group and follows it from generation to generation until the
// subscription closes; then it leaves the group. With Pattern it watches
// the topics that match, and when they change it leaves the group and
// joins it again with the new topics.
func (s *subscription) runGroup(ctx context.Context, gc kafka.ConsumerGroupConfig) {
	defer close(s.done)
	for {
		// Joining before the topic exists would make the leader assign
		// no partitions, and kafka-go's partition watcher, which takes
		// its baseline after the assignment, can miss the topic
		// appearing in between and never rebalance.
		topics, ok := s.waitForTopics(ctx, gc.PartitionWatchInterval)
		if !ok {
			return
		}
		gc.Topics = topics
		if !s.member(ctx, gc) {
			return
		}
	}
}

// member is a member of the group for gc.Topics until the subscription
// closes (it returns false) or, with Pattern, the topics that match change
// (it returns true). It leaves the group before it returns.
func (s *subscription) member(ctx context.Context, gc kafka.ConsumerGroupConfig) bool {
	cg, err := kafka.NewConsumerGroup(gc)
	if err != nil { // Subscribe validated gc
		s.log(slog.LevelError, "kafkabroker: consumer group failed", slog.Any("error", err))
		return false
	}
	defer func() {
		// Ends the generation held below and leaves the group.
		if err := cg.Close(); err != nil {
			s.log(slog.LevelWarn, "kafkabroker: leave group failed", slog.Any("error", err))
		}
	}()
	changed := make(chan struct{})
	// nextCtx also ends when the topics change, so that a member waiting
	// for a generation (a join that fails while a topic is being deleted)
	// notices the change.
	nextCtx, cancelNext := context.WithCancel(ctx)
	defer cancelNext()
	if s.pattern != nil {
		go s.watchTopics(nextCtx, gc.Topics, changed)
		go func() {
			select {
			case <-changed:
				cancelNext()
			case <-nextCtx.Done():
			}
		}()
	}
	for {
		gen, err := cg.Next(nextCtx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				return false
			}
			if isClosed(changed) {
				return true
			}
			// Join failures (coordinator moving, topic deleted) heal by
			// themselves; kafka-go retries after the join backoff. A
			// rebalance that began while joining is routine.
			level := slog.LevelWarn
			if errors.Is(err, kafka.RebalanceInProgress) {
				level = slog.LevelDebug
			}
			s.log(level, "kafkabroker: group join failed, retrying", slog.Any("error", err))
			continue
		}
		drained := make(chan struct{})
		gen.Start(func(genCtx context.Context) {
			// The generation's partitions are released when the group
			// rebalances (genCtx), the subscription closes (s.stop) or
			// the topics a pattern matches change.
			stop := make(chan struct{})
			go func() {
				select {
				case <-genCtx.Done():
				case <-s.stop:
				case <-changed:
				}
				close(stop)
			}()
			c := newCommitter(gen, s.commitInterval(), s)
			var parts []part
			for topic, as := range gen.Assignments {
				for _, a := range as {
					parts = append(parts, part{topic: topic, id: a.ID, offset: a.Offset})
				}
			}
			s.consume(stop, parts, c)
			close(drained)
			if s.stopping() || isClosed(changed) {
				// Hold the generation until member closes the group.
				// Were this function to return now, kafka-go would end
				// the generation and join the group again just before
				// leaving it, making the other members rebalance twice.
				select {
				case <-genCtx.Done():
				case <-s.abandon:
				}
			}
		})
		<-drained
		if s.stopping() {
			return false
		}
		if isClosed(changed) {
			return true
		}
	}
}

// commitInterval is the CommitInterval of the reader configuration
// (WithReaderConfig): 0 commits each acknowledgement before Ack returns.
func (s *subscription) commitInterval() time.Duration {
	return s.t.readerConfig(s.spec.Destination, 0).CommitInterval
}

// waitForTopics returns the subscription's topic, or the topics its pattern
// matches, once there is one, or false when the subscription closes first.
// It looks again every interval (the group's partition watch interval).
func (s *subscription) waitForTopics(ctx context.Context, interval time.Duration) ([]string, bool) {
	if interval <= 0 {
		interval = defaultTopicWait
	}
	if s.pattern != nil {
		interval = min(interval, s.t.patternRefresh())
	}
	logged := false
	for {
		topics, err := s.topics(ctx)
		if err == nil {
			return topics, true
		}
		if ctx.Err() != nil {
			return nil, false
		}
		if !logged {
			logged = true
			s.log(slog.LevelInfo, "kafkabroker: topic not available yet, waiting", slog.Any("error", err))
		}
		if !wait.Sleep(interval, ctx.Done()) {
			return nil, false
		}
	}
}

// topics returns the subscription's topic, or the topics its pattern
// matches, or an error wrapping ErrUnknownTopic when there is none.
func (s *subscription) topics(ctx context.Context) ([]string, error) {
	if s.pattern != nil {
		topics, err := s.t.matchingTopics(ctx, s.pattern)
		if err == nil && len(topics) == 0 {
			err = fmt.Errorf("kafkabroker: subscribe pattern %q: no topic matches: %w", s.spec.Destination, ErrUnknownTopic)
		}
		return topics, err
	}
	if _, err := s.t.partitionsAt(ctx, s.spec.Destination, kafka.FirstOffset, nil); err != nil {
		return nil, err
	}
	return []string{s.spec.Destination}, nil
}

func (s *subscription) stopping() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// Close stops fetching, waits for the deliveries in flight to be settled and
// their offsets committed, then leaves the group and closes the readers.
// When ctx is done first it returns an error wrapping ctx.Err() at once and
// abandons the deliveries still running: their messages were not committed
// and will be delivered again. The group is then left in the background.
func (s *subscription) Close(ctx context.Context) error {
	first := false
	s.closeOnce.Do(func() {
		first = true
		s.closed = make(chan struct{})
		close(s.stop)
		if s.cancelRun != nil {
			s.cancelRun()
		}
		select {
		case <-s.done:
		case <-ctx.Done():
			if isClosed(s.done) {
				break // drained just in time
			}
			close(s.abandon)
			s.closeErr = fmt.Errorf("kafkabroker: close subscription %s: %w", s.spec.Destination, ctx.Err())
			// Not waiting for s.done: leaving the group can take a
			// network round trip, or a whole join if one is under way.
			// The goroutines finish in the background; the stuck
			// deliveries end when the broker cancels their context.
		}
		s.t.removeSub(s)
		close(s.closed)
	})
	if !first {
		<-s.closed
		return nil
	}
	return s.closeErr
}

func (s *subscription) log(level slog.Level, msg string, attrs ...slog.Attr) {
	attrs = append(attrs, slog.String("topic", s.spec.Destination), slog.String("group", s.spec.Group))
	s.t.cfg.logger.LogAttrs(context.Background(), level, msg, attrs...)
}

// readerConfig is the configuration of the reader of one partition of
// topic: the transport's defaults, then the WithReaderConfig hooks, then
// what the transport relies on.
func (t *Transport) readerConfig(topic string, partition int) kafka.ReaderConfig {
	rc := kafka.ReaderConfig{
		Dialer:          t.dialer,
		MaxBytes:        defaultMaxBytes,
		MaxWait:         defaultMaxWait,
		ReadLagInterval: -1,
		ErrorLogger:     t.logger,
	}
	for _, fn := range t.cfg.readerHooks {
		fn(&rc)
	}
	rc.Brokers = t.cfg.brokers
	rc.Topic = topic
	rc.Partition = partition
	rc.GroupID = ""
	rc.GroupTopics = nil
	// After the hooks, so that a dialer they set is kept (see silent.go).
	rc.Dialer = withAnswerTimeout(rc.Dialer, t.dialer.Timeout)
	return rc
}
