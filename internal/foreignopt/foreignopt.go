// Package foreignopt lets the test harness run a service wired with the
// subscription options of another transport (natsbroker.Stream,
// kafkabroker.StartOffset) on the memory transport. Outside the harness
// the broker and the memory transport refuse such options with
// errors.ErrUnsupported; a transport registered here with a Checker takes
// them instead: the Checker validates them as far as it can and records
// that they were ignored.
//
// The registry is keyed by transport, so nothing changes for a transport
// nobody registered, and no exported name of the library is needed.
package foreignopt

import (
	"sync"

	"github.com/tracebus/tracebus/broker/driver"
)

// Checker validates foreign, the options of spec that belong to other
// transports, and records them as ignored. A non-nil error fails the
// subscription as the option's own transport would.
type Checker func(spec driver.SubscriptionSpec, foreign []driver.TransportOption) error

var registry sync.Map // driver.Transport → Checker

// Tolerate makes t take the options of other transports, handing them to
// check. The returned func undoes it; call it once t is closed.
func Tolerate(t driver.Transport, check Checker) (undo func()) {
	registry.Store(t, check)
	return func() { registry.Delete(t) }
}

// For returns the Checker registered for t, or nil when t refuses the
// options of other transports, as it does by default.
func For(t driver.Transport) Checker {
	if c, ok := registry.Load(t); ok {
		return c.(Checker)
	}
	return nil
}
