// Package natstest runs a NATS server for tests, examples and demos: an
// embedded github.com/nats-io/nats-server/v2 with JetStream, listening on a
// random local port and storing streams in a temporary directory, or an
// external server named by the TRACEBUS_NATS_URL environment variable.
//
//	srv := natstest.New(t)         // stopped and its store removed with the test
//	nc := srv.Connect(t)           // closed with the test
//	srv.Restart(t)                 // same port, same store: JetStream data survives
//
// Start starts the same embedded server outside of tests; go run ./example
// uses it so that the example needs no installed server. It lives under
// testutil because it is development tooling, not part of the framework a
// service ships: nothing outside tests, examples and demos should import
// it.
package natstest
