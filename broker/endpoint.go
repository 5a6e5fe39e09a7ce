package broker

import (
	"slices"

	"github.com/tracebus/tracebus/broker/driver"
)

// Endpoints returns the subscriptions and publishers registered on b, in
// registration order.
func (b *Broker) Endpoints() []driver.Endpoint {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.endpoints)
}

// addPublisher adds the endpoint of a publisher or requester, unless an
// identical one is there already: building the same publisher again (for
// one publish, say) must leave nothing behind, and a document generated
// from the endpoints lists each publisher once.
func (b *Broker) addPublisher(e driver.Endpoint) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.published[e]; ok {
		return
	}
	if b.published == nil {
		b.published = make(map[driver.Endpoint]struct{})
	}
	b.published[e] = struct{}{}
	b.endpoints = append(b.endpoints, e)
}
