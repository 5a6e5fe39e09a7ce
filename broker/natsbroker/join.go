package natsbroker

import (
	"strings"

	"github.com/tracebus/tracebus/broker/driver"
)

var _ driver.DestinationJoiner = (*Transport)(nil)

// JoinDestination implements driver.DestinationJoiner for routers: NATS
// subjects are dot-separated, so prefix "orders" and "created" make
// "orders.created". A prefix that already ends with a dot is used as it is.
func (t *Transport) JoinDestination(prefix, destination string) string {
	if prefix == "" || strings.HasSuffix(prefix, ".") {
		return prefix + destination
	}
	return prefix + "." + destination
}
