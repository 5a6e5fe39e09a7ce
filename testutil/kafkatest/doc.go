// Package kafkatest runs a Kafka cluster for tests, examples and demos:
// in-process, on the real wire protocol, with
// github.com/twmb/franz-go/pkg/kfake, or an external cluster named by the
// TRACEBUS_KAFKA_BROKERS environment variable.
//
//	c := kafkatest.New(t)                       // torn down when the test ends
//	c.CreateTopic(t, "orders", 3)
//	tr, err := kafkabroker.New(c.TransportOptions()...)
//
// Start runs the same cluster outside of tests; go run ./example uses it so
// that the example needs no installed Kafka. It lives under testutil because
// it is development tooling, not part of the framework a service ships:
// nothing outside tests, examples and demos should import it.
//
// TransportOptions tunes the consumer group timings for tests, so that a
// group join or rebalance takes milliseconds instead of seconds.
package kafkatest
