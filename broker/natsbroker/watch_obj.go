package natsbroker

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/internal/wait"
)

// objectVersion tells the updates of one object apart: a put gives a new
// NUID, a metadata update a new modification time, a delete the flag.
type objectVersion struct {
	nuid    string
	modTime int64
	deleted bool
}

// objectReadTimeout bounds one attempt at reading an object's content.
const objectReadTimeout = time.Minute

// startObjects opens the object store and its watcher, and starts the
// loop. The watcher first sends every object there is, then the updates.
// nats.go's object watcher cannot resume at a position, so a new watcher
// sends every object again: the versions already delivered are skipped,
// and an object changed meanwhile is delivered in its current version,
// which is the only one the bucket still holds.
func (s *watchSub) startObjects(ctx context.Context, deliver driver.DeliverFunc) error {
	obs, err := s.t.js.ObjectStore(ctx, s.bucket)
	if err != nil {
		return errWatchBucket(s.kind, s.bucket, err)
	}
	open := func(ctx context.Context) (watcher[*jetstream.ObjectInfo], error) { return obs.Watch(ctx) }
	w, cancel, err := watchOpen(s, open)
	if err != nil {
		return errWatchBucket(s.kind, s.bucket, err)
	}
	s.r = newRunner(s.ctx, deliver, s.spec.Concurrency)
	stream := "OBJ_" + s.bucket
	seen := make(map[string]objectVersion) // loop goroutine only
	take := func(info *jetstream.ObjectInfo) {
		// nil marks the end of the initial objects.
		if info == nil || !nameMatches(s.spec.Destination, info.Name) {
			return
		}
		v := objectVersion{nuid: info.NUID, modTime: info.ModTime.UnixNano(), deleted: info.Deleted}
		if seen[info.Name] == v {
			return
		}
		seen[info.Name] = v
		var body []byte
		if !info.Deleted {
			var ok bool
			if body, ok = s.readObject(obs, info); !ok {
				return
			}
		}
		s.submitUpdate(func(bm *broker.Message, attempt int) { objectMessage(bm, info, body, &s.spec, stream, attempt) })
	}
	go watchLoop(s, w, cancel, open, take)
	return nil
}

// readObject reads the content of the object info describes, trying again
// while the server cannot be reached. It returns false when there is
// nothing to deliver: the object was deleted or replaced since (its later
// update follows and is delivered instead), or the subscription closed.
func (s *watchSub) readObject(obs jetstream.ObjectStore, info *jetstream.ObjectInfo) ([]byte, bool) {
	delay := 100 * time.Millisecond
	for {
		body, current, err := readObjectOnce(s.ctx, obs, info.Name)
		switch {
		case errors.Is(err, jetstream.ErrObjectNotFound):
			return nil, false
		case err == nil && current != info.NUID:
			return nil, false
		case err == nil:
			return body, true
		}
		s.t.cfg.logger.Warn("natsbroker: read a watched object; trying again",
			"bucket", s.bucket, "object", info.Name, "error", err)
		if !wait.Sleep(delay, s.stop) {
			s.lost()
			return nil, false
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// readObjectOnce reads the named object and returns its content and NUID.
func readObjectOnce(ctx context.Context, obs jetstream.ObjectStore, name string) ([]byte, string, error) {
	ctx, cancel := context.WithTimeout(ctx, objectReadTimeout)
	defer cancel()
	res, err := obs.Get(ctx, name)
	if err != nil {
		return nil, "", err
	}
	defer res.Close()
	info, err := res.Info()
	if err != nil {
		return nil, "", err
	}
	body, err := io.ReadAll(res)
	if err != nil {
		return nil, "", err
	}
	return body, info.NUID, nil
}

// objectMessage fills bm, the message handed to a handler on delivery
// attempt, from an object's update and content.
func objectMessage(bm *broker.Message, info *jetstream.ObjectInfo, body []byte, spec *driver.SubscriptionSpec, stream string, attempt int) {
	*bm = broker.Message{
		Destination: info.Name,
		Body:        body,
		Headers:     brokerHeaders(info.Headers),
		ID:          info.NUID,
		Delivery: driver.Delivery{
			Subscription:  spec.Destination,
			DeliveryCount: attempt,
			Timestamp:     info.ModTime,
			Stream:        stream,
			Bucket:        info.Bucket,
			Deleted:       info.Deleted,
		},
	}
}
