package kafkabroker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
)

var _ driver.Puller = (*Transport)(nil)

// Pull implements driver.Puller. With spec.Group it opens a kafka-go
// group Reader (FetchMessage, CommitMessages): the group's partitions are
// shared among its members, a message is committed when it is
// acknowledged or terminated, and a new group starts at the first offset.
// Without a group it opens one partition reader per partition of the
// topic (or per partition Partitions names), at the offsets StartOffset
// gives (by default the end, taken when Pull is called), and commits
// nothing. A Pattern subscription cannot be pulled: Pull fails with
// broker.ErrInvalid.
//
// As for Subscribe, a partition never moves past an unsettled message: a
// message taken from a partition whose previous message is not settled
// yet waits in the client, and a Nak hands the same message back to a
// later next after its delay, before anything newer of its partition.
// Messages read ahead by kafka-go stay uncommitted until taken and
// settled.
func (t *Transport) Pull(ctx context.Context, spec driver.SubscriptionSpec) (driver.Subscription, func(context.Context) (*broker.Message, driver.Acknowledger, error), error) {
	if t.isClosed() {
		return nil, nil, broker.ErrClosed
	}
	if spec.Destination == "" || spec.Batch {
		return nil, nil, fmt.Errorf("kafkabroker: pull from %q: an empty destination or a batch spec: %w", spec.Destination, broker.ErrInvalid)
	}
	sc, err := t.subscription(&spec)
	if err != nil {
		return nil, nil, err
	}
	if sc.pattern != nil {
		return nil, nil, errPullPattern(spec.Destination)
	}
	if t.cfg.createPartitions != 0 {
		if err := t.ensureTopic(ctx, spec.Destination); err != nil {
			return nil, nil, err
		}
	}
	p := &puller{t: t, spec: spec, parts: map[int]*partQueue{}, changed: make(chan struct{})}
	if spec.Group != "" {
		gc := t.groupConfig(spec, []string{spec.Destination}, sc.groupStart())
		rc := t.readerConfig(spec.Destination, 0)
		rc.Partition = 0
		rc.GroupID = spec.Group
		rc.StartOffset = gc.StartOffset
		rc.WatchPartitionChanges = true
		rc.CommitInterval = 0 // commits are synchronous: Ack returns once committed
		if gc.HeartbeatInterval > 0 {
			rc.HeartbeatInterval = gc.HeartbeatInterval
		}
		if gc.SessionTimeout > 0 {
			rc.SessionTimeout = gc.SessionTimeout
		}
		if gc.RebalanceTimeout > 0 {
			rc.RebalanceTimeout = gc.RebalanceTimeout
		}
		if err := rc.Validate(); err != nil {
			return nil, nil, fmt.Errorf("kafkabroker: pull from %s as group %s: %v: %w", spec.Destination, spec.Group, err, broker.ErrInvalid)
		}
		r := kafka.NewReader(rc)
		p.readers = []*kafka.Reader{r}
		p.fetch = r.FetchMessage
		p.commit = func(ctx context.Context, m kafka.Message) error { return r.CommitMessages(ctx, m) }
	} else {
		start := int64(kafka.LastOffset)
		if sc.startSet {
			start = sc.startOffset
		}
		parts, err := t.partitionsAt(ctx, spec.Destination, start, sc.partitions)
		if err != nil {
			return nil, nil, err
		}
		in := make(chan kafka.Message)
		runCtx, cancel := context.WithCancel(context.Background())
		p.stopFeed = cancel
		for _, pa := range parts {
			r := kafka.NewReader(t.readerConfig(spec.Destination, pa.id))
			if err := r.SetOffset(pa.offset); err != nil {
				cancel()
				_ = p.closeReaders()
				_ = r.Close()
				return nil, nil, fmt.Errorf("kafkabroker: pull from %s: partition %d: %w", spec.Destination, pa.id, err)
			}
			p.readers = append(p.readers, r)
			p.feeds.Go(func() { p.feed(runCtx, r, in) })
		}
		p.fetch = func(ctx context.Context) (kafka.Message, error) {
			select {
			case m := <-in:
				return m, nil
			case <-ctx.Done():
				return kafka.Message{}, ctx.Err()
			}
		}
	}
	t.mu.Lock()
	if t.closed.Load() {
		t.mu.Unlock()
		_ = p.Close(ctx)
		return nil, nil, broker.ErrClosed
	}
	if t.pulls == nil {
		t.pulls = map[*puller]struct{}{}
	}
	t.pulls[p] = struct{}{}
	t.mu.Unlock()
	return p, p.next, nil
}

// puller takes the messages of one topic on demand.
type puller struct {
	t        *Transport
	spec     driver.SubscriptionSpec
	readers  []*kafka.Reader
	fetch    func(context.Context) (kafka.Message, error)
	commit   func(context.Context, kafka.Message) error // nil without a group
	stopFeed context.CancelFunc
	feeds    sync.WaitGroup

	mu      sync.Mutex
	parts   map[int]*partQueue
	changed chan struct{} // closed (and replaced) when a queued message may be taken
	closed  bool
}

// partQueue holds the messages of one partition that were read and not
// settled: the first is taken (or waits for its retry), the rest wait for
// it.
type partQueue struct {
	msgs    []kafka.Message
	taken   bool
	attempt int
	due     time.Time
}

// feed moves the messages of one partition reader to next, until ctx ends.
func (p *puller) feed(ctx context.Context, r *kafka.Reader, in chan<- kafka.Message) {
	for failures := 1; ; failures++ {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.t.cfg.logger.Warn("kafkabroker: fetch failed", "topic", p.spec.Destination,
				"partition", r.Config().Partition, "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(min(failures, 20)) * 100 * time.Millisecond):
			}
			continue
		}
		failures = 0
		select {
		case in <- m:
		case <-ctx.Done():
			return
		}
	}
}

// ready takes a queued message that may go now, if any, and says when the
// next retry is due otherwise.
func (p *puller) ready(now time.Time) (m kafka.Message, attempt int, ok bool, soonest time.Time) {
	for _, q := range p.parts {
		if len(q.msgs) == 0 || q.taken {
			continue
		}
		if !q.due.After(now) {
			q.taken = true
			return q.msgs[0], q.attempt, true, soonest
		}
		if soonest.IsZero() || q.due.Before(soonest) {
			soonest = q.due
		}
	}
	return kafka.Message{}, 0, false, soonest
}

func (p *puller) next(ctx context.Context) (*broker.Message, driver.Acknowledger, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, nil, broker.ErrClosed
		}
		m, attempt, ok, soonest := p.ready(time.Now())
		changed := p.changed
		p.mu.Unlock()
		if ok {
			return p.message(m, attempt)
		}
		fctx, cancel := context.WithCancel(ctx)
		go func() {
			var due <-chan time.Time
			if !soonest.IsZero() {
				timer := time.NewTimer(time.Until(soonest))
				defer timer.Stop()
				due = timer.C
			}
			select {
			case <-changed:
			case <-due:
			case <-fctx.Done():
			}
			cancel()
		}()
		km, err := p.fetch(fctx)
		cancel()
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return nil, nil, cerr
			}
			if fctx.Err() != nil {
				continue // a queued message may go, or Close
			}
			if errors.Is(err, io.EOF) {
				return nil, nil, fmt.Errorf("kafkabroker: pull from %s: %w", p.spec.Destination, broker.ErrClosed)
			}
			return nil, nil, fmt.Errorf("kafkabroker: pull from %s: %w", p.spec.Destination, err)
		}
		p.mu.Lock()
		q := p.parts[km.Partition]
		if q == nil {
			q = &partQueue{}
			p.parts[km.Partition] = q
		}
		q.msgs = append(q.msgs, km)
		first := len(q.msgs) == 1
		if first {
			q.taken, q.attempt, q.due = true, 1, time.Time{}
		}
		p.mu.Unlock()
		if first {
			return p.message(km, 1)
		}
	}
}

func (p *puller) message(km kafka.Message, attempt int) (*broker.Message, driver.Acknowledger, error) {
	out := toMessages([]kafka.Message{km}, p.spec.Destination, p.spec.Group, attempt)
	return out[0], &pullAck{p: p, m: km}, nil
}

// settled removes the first message of m's partition, once settled for
// good, or puts it back for a retry after delay.
func (p *puller) settled(m kafka.Message, retry bool, delay time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.parts[m.Partition]
	if q == nil || len(q.msgs) == 0 || q.msgs[0].Offset != m.Offset {
		return
	}
	q.taken = false
	if retry {
		q.attempt++
		q.due = time.Now().Add(delay)
	} else {
		q.msgs[0] = kafka.Message{}
		q.msgs = q.msgs[1:]
		q.attempt, q.due = 1, time.Time{}
	}
	if len(q.msgs) > 0 {
		close(p.changed)
		p.changed = make(chan struct{})
	}
}

// Close stops reading and closes the readers; a group member leaves its
// group. Messages read and not committed are read again by the group.
func (p *puller) Close(context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	p.t.mu.Lock()
	delete(p.t.pulls, p)
	p.t.mu.Unlock()
	if p.stopFeed != nil {
		p.stopFeed()
	}
	p.feeds.Wait()
	return p.closeReaders()
}

func (p *puller) closeReaders() error {
	var errs []error
	for _, r := range p.readers {
		if err := r.Close(); err != nil {
			errs = append(errs, fmt.Errorf("kafkabroker: close reader of %s: %w", p.spec.Destination, err))
		}
	}
	return errors.Join(errs...)
}

// pullAck settles one pulled message: Ack and Term commit it (with a
// group), Nak hands it back to a later next.
type pullAck struct {
	p    *puller
	m    kafka.Message
	once sync.Once
}

func (a *pullAck) first() bool {
	ok := false
	a.once.Do(func() { ok = true })
	return ok
}

func (a *pullAck) Ack(ctx context.Context) error  { return a.final(ctx) }
func (a *pullAck) Term(ctx context.Context) error { return a.final(ctx) }

func (a *pullAck) final(ctx context.Context) error {
	if !a.first() {
		return errSettledTwice
	}
	if a.p.commit != nil {
		if err := a.p.commit(ctx, a.m); err != nil {
			// Not committed: the partition stays at the message, which
			// the group reads again after a rebalance or restart.
			a.p.settled(a.m, false, 0)
			return fmt.Errorf("kafkabroker: commit offset %d of %s[%d]: %w", a.m.Offset, a.m.Topic, a.m.Partition, err)
		}
	}
	a.p.settled(a.m, false, 0)
	return nil
}

func (a *pullAck) Nak(_ context.Context, delay time.Duration) error {
	if !a.first() {
		return errSettledTwice
	}
	a.p.settled(a.m, true, delay)
	return nil
}
