// Package subopt is how the transports define their subscription options:
// one typed driver.TransportOption per transport that names itself in
// errors, and one way to read them from a SubscriptionSpec.
package subopt

import (
	"errors"
	"fmt"

	"github.com/tracebus/tracebus/broker/driver"
)

// Option is a subscription option of the transport whose package and
// system are Package and System, applied to that transport's settings C.
type Option[C any] struct {
	Package string // "natsbroker"
	System  string // "nats", as in driver.Info
	Name    string // how the user wrote it: "Stream(ORDERS)"
	Apply   func(*C)
	// Elsewhere marks an option whose subscription does not read the
	// transport's destinations (a NATS key-value watch reads the keys of
	// a bucket): see driver.TransportOption.
	Elsewhere bool
	// Pattern marks an option that makes the destination a pattern the
	// transport matches itself (kafkabroker.Pattern, a regular
	// expression): the broker passes it on as written, braces included,
	// instead of reading it as a destination template.
	Pattern bool
}

// ReadsElsewhere implements the optional method of driver.TransportOption.
func (o Option[C]) ReadsElsewhere() bool { return o.Elsewhere }

// DestinationPattern reports Pattern. The broker looks for this method on
// the transport options of a subscription.
func (o Option[C]) DestinationPattern() bool { return o.Pattern }

// TransportName implements driver.TransportOption.
func (o Option[C]) TransportName() string { return o.System }

// String names the option in errors: "natsbroker.Stream(ORDERS)".
func (o Option[C]) String() string { return o.Package + "." + o.Name }

// Apply applies the options of spec to c. An option that is not an
// Option[C] (another transport's, or a value made up to look like one)
// fails with an error wrapping errors.ErrUnsupported that names it.
func Apply[C any](pkg, system string, spec *driver.SubscriptionSpec, c *C) error {
	for _, o := range spec.TransportOptions {
		so, ok := o.(Option[C])
		if !ok {
			return fmt.Errorf("%s: subscribe %s: option %v is for the %s transport, not %s: %w",
				pkg, spec.Destination, o, o.TransportName(), system, errors.ErrUnsupported)
		}
		so.Apply(c)
	}
	return nil
}
