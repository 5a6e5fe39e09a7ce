// Package kafkatest runs a Kafka cluster for tests: in-process, on the real
// wire protocol, with github.com/twmb/franz-go/pkg/kfake, or an external
// cluster named by the TRACEBUS_KAFKA_BROKERS environment variable.
//
//	c := kafkatest.New(t)                       // torn down when the test ends
//	c.CreateTopic(t, "orders", 3)
//	tr, err := kafkabroker.New(c.TransportOptions()...)
//
// TransportOptions tunes the consumer group timings for tests, so that a
// group join or rebalance takes milliseconds instead of seconds.
package kafkatest
