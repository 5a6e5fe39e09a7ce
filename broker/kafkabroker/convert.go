package kafkabroker

import (
	kafka "github.com/segmentio/kafka-go"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
)

// toMessages makes the messages of one delivery attempt. Every attempt gets
// fresh copies: a handler owns its messages during the call and may write
// into them, and a retry must still see what was fetched. Keys and bodies
// share one allocation per attempt.
func toMessages(kms []kafka.Message, subscription, group string, count int) []*broker.Message {
	size := 0
	nh := 0
	for i := range kms {
		size += len(kms[i].Key) + len(kms[i].Value)
		nh += len(kms[i].Headers)
	}
	arena := make([]byte, 0, size)
	var headers broker.Headers
	if nh > 0 {
		headers = make(broker.Headers, 0, nh)
	}
	values := make([]broker.Message, len(kms))
	out := make([]*broker.Message, len(kms))
	for i := range kms {
		km := &kms[i]
		m := &values[i]
		m.Destination = km.Topic
		m.Key, arena = copyInto(arena, km.Key)
		m.Body, arena = copyInto(arena, km.Value)
		if len(km.Headers) > 0 {
			start := len(headers)
			for _, h := range km.Headers {
				// The id header carries Message.ID: it is the message's
				// id, not one of its headers.
				if h.Key == driver.HeaderMessageID {
					m.ID = string(h.Value)
					continue
				}
				headers = append(headers, driver.Header{Key: h.Key, Value: string(h.Value)})
			}
			// Full slice expression: a handler appending to its headers
			// must not overwrite the next message's.
			if len(headers) > start {
				m.Headers = headers[start:len(headers):len(headers)]
			}
			m.ReplyTo = m.Headers.Get(driver.HeaderReplyTo)
		}
		m.Delivery = driver.Delivery{
			Subscription:  subscription,
			Group:         group,
			Partition:     int32(km.Partition),
			Offset:        km.Offset,
			DeliveryCount: count,
			Timestamp:     km.Time,
		}
		out[i] = m
	}
	return out
}
