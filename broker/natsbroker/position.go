package natsbroker

import (
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// position remembers how far a subscription got in its stream, so that a
// consumer created again (after an operator deleted it, or an ephemeral one
// expired while the client was away) resumes where the old one stopped
// instead of at the stream's end (ephemeral, DeliverNew: messages published
// in between would be skipped) or at its start (durable, DeliverAll: the
// whole stream would be handled again). nats.go's ordered consumer does the
// same with the last stream sequence it delivered.
//
// With explicit acks, "where it stopped" is the lowest stream sequence
// received but not yet settled for good (acked or terminated): a message
// waiting for a redelivery after a nak, or still in a handler, must come
// again from the new consumer. When nothing is open, it is the sequence
// after the highest one received. Messages between the two that were
// already settled are delivered again: JetStream's guarantee is at least
// once, and that is the price of never skipping one.
//
// The open set holds at most what the server lets the consumer have
// unacknowledged (MaxAckPending), so the sender cannot grow it.
type position struct {
	mu    sync.Mutex
	open  map[uint64]struct{} // stream sequences received, not yet settled
	floor uint64              // the highest sequence settled (or acked before we began)
}

func newPosition() *position { return &position{open: make(map[uint64]struct{})} }

// opened records what the server said about a consumer just created or
// bound: its acknowledgement floor is a lower bound of where to resume.
func (p *position) opened(info *jetstream.ConsumerInfo) {
	if info == nil {
		return
	}
	p.mu.Lock()
	p.floor = max(p.floor, info.AckFloor.Stream)
	p.mu.Unlock()
}

// received records the delivery of stream sequence seq.
func (p *position) received(seq uint64) {
	if seq == 0 {
		return
	}
	p.mu.Lock()
	p.open[seq] = struct{}{}
	p.mu.Unlock()
}

// settled records that a delivery of seq was acked or terminated: it was
// handled, whichever consumer delivered it. A nak settles nothing; the
// message stays open until a later delivery of it is settled.
func (p *position) settled(seq uint64) {
	if seq == 0 {
		return
	}
	p.mu.Lock()
	delete(p.open, seq)
	p.floor = max(p.floor, seq)
	p.mu.Unlock()
}

// resume returns the stream sequence a new consumer should start at, and
// false when nothing was received or settled yet (the consumer's own
// deliver policy still applies).
func (p *position) resume() (uint64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	low := uint64(0)
	for seq := range p.open {
		if low == 0 || seq < low {
			low = seq
		}
	}
	if low != 0 {
		return low, true
	}
	if p.floor == 0 {
		return 0, false
	}
	return p.floor + 1, true
}
