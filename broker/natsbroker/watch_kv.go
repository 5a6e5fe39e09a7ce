package natsbroker

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
)

// kvOperationHeader is the header NATS writes on the deletes and purges
// of a key-value bucket, with kvDel or kvPurge as value.
const (
	kvOperationHeader = "KV-Operation"
	kvDel             = "DEL"
	kvPurge           = "PURGE"
)

// subscribeWatch starts a WatchKV or WatchObjects subscription: it opens
// the bucket (which must exist) and its first watcher before it returns.
func (t *Transport) subscribeWatch(ctx context.Context, spec driver.SubscriptionSpec, deliver driver.DeliverFunc, sc *subConfig) (driver.Subscription, error) {
	s := &watchSub{t: t, spec: spec, kind: "KV", stop: make(chan struct{}), done: make(chan struct{})}
	if len(sc.watchObj) == 1 {
		s.kind, s.bucket = "object store", sc.watchObj[0]
	} else {
		s.bucket = sc.watchKV[0]
	}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	setupCtx, cancel := context.WithTimeout(s.ctx, defaultTimeout)
	defer cancel()
	var err error
	if s.kind == "KV" {
		err = s.startKV(setupCtx, deliver)
	} else {
		err = s.startObjects(setupCtx, deliver)
	}
	if err != nil {
		s.cancel()
		return nil, err
	}
	return s, nil
}

// startKV opens the bucket and its watcher, and starts the loop. The
// watcher first sends the current value of every matching key, then the
// updates; after a watcher ended it resumes at the revision after the last
// one received, so that every update the bucket still holds is delivered,
// and an update received twice (by revision) is delivered once.
func (s *watchSub) startKV(ctx context.Context, deliver driver.DeliverFunc) error {
	kv, err := s.t.js.KeyValue(ctx, s.bucket)
	if err != nil {
		return errWatchBucket(s.kind, s.bucket, err)
	}
	var last uint64 // revision of the last update taken; loop goroutine only
	open := func(ctx context.Context) (watcher[jetstream.KeyValueEntry], error) {
		if last == 0 {
			return kv.Watch(ctx, s.spec.Destination)
		}
		return kv.Watch(ctx, s.spec.Destination, jetstream.ResumeFromRevision(last+1))
	}
	w, cancel, err := watchOpen(s, open)
	if err != nil {
		return errWatchBucket(s.kind, s.bucket, err)
	}
	s.r = newRunner(s.ctx, deliver, s.spec.Concurrency)
	stream := "KV_" + s.bucket
	take := func(e jetstream.KeyValueEntry) {
		// nil marks the end of the initial values.
		if e == nil || e.Revision() <= last {
			return
		}
		last = e.Revision()
		s.submitUpdate(func(bm *broker.Message, attempt int) { kvMessage(bm, e, &s.spec, stream, attempt) })
	}
	go watchLoop(s, w, cancel, open, take)
	return nil
}

// kvMessage fills bm, the message handed to a handler on delivery attempt,
// from a key-value entry. A retry hands the next attempt the same value
// buffer.
func kvMessage(bm *broker.Message, e jetstream.KeyValueEntry, spec *driver.SubscriptionSpec, stream string, attempt int) {
	*bm = broker.Message{
		Destination: e.Key(),
		Body:        e.Value(),
		Delivery: driver.Delivery{
			Subscription:  spec.Destination,
			Sequence:      e.Revision(),
			DeliveryCount: attempt,
			Timestamp:     e.Created(),
			Stream:        stream,
			Bucket:        e.Bucket(),
		},
	}
	var op string
	switch e.Operation() {
	case jetstream.KeyValueDelete:
		op = kvDel
	case jetstream.KeyValuePurge:
		op = kvPurge
	default:
		return
	}
	bm.Body = nil
	bm.Delivery.Deleted = true
	bm.Headers = broker.Headers{{Key: kvOperationHeader, Value: op}}
}
