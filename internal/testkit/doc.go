// Package testkit holds the fixtures tracebus's own tests share with the
// conformance suites: payload types, an inbox for what handlers receive,
// one-retry and blocked-close scenarios, and the switch between the short
// and heavy variants of the fault and load tests. It is internal so that
// they never show up beside a service's own types.
package testkit
