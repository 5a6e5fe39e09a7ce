package middleware

import (
	"context"

	"github.com/tracebus/tracebus/broker/driver"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// The names of the metrics of the broker's outcome policy. They are
// tracebus's own (the semantic conventions have none for them); an
// OpenTelemetry-to-Prometheus export names them
// tracebus_consumer_retried_messages_total and so on (the up-down counter
// without _total).
const (
	// retriedMessagesMetric counts messages whose handler failed and that
	// will be delivered again, with error.type.
	retriedMessagesMetric = "tracebus.consumer.retried.messages"
	// deadLetteredMessagesMetric counts messages sent to the dead-letter
	// destination after their last attempt, with error.type.
	deadLetteredMessagesMetric = "tracebus.consumer.dead_lettered.messages"
	// droppedMessagesMetric counts messages given up without a dead letter,
	// with dropReasonKey: "failed" (the last attempt failed, or the failure
	// was permanent; with error.type), or the transport's reason for
	// dropping them before a handler settled them: "slow_consumer",
	// "max_deliveries".
	droppedMessagesMetric = "tracebus.consumer.dropped.messages"
	// hungMessagesMetric counts messages whose handler ran past the
	// transport's maximum handling time and that were given back for
	// redelivery.
	hungMessagesMetric = "tracebus.consumer.hung.messages"
	// inflightMessagesMetric is an up-down counter of the messages in
	// handlers now.
	inflightMessagesMetric = "tracebus.consumer.inflight.messages"
)

// dropReasonKey tells why messages counted in droppedMessagesMetric were
// dropped: dropReasonFailed, or a transport's reason (driver.Outcome.Reason,
// such as dropReasonSlowConsumer).
const dropReasonKey = attribute.Key("tracebus.drop.reason")

// The values of dropReasonKey.
const (
	dropReasonFailed       = "failed"
	dropReasonSlowConsumer = "slow_consumer"
)

var _ driver.OutcomeObserver = (*Telemetry)(nil)

// outcomeInstruments are the instruments of the outcome metrics.
type outcomeInstruments struct {
	retried, deadLettered, dropped, hung metric.Int64Counter
	inflight                             metric.Int64UpDownCounter
}

func newOutcomeInstruments(meter metric.Meter) outcomeInstruments {
	var in outcomeInstruments
	counter := func(name, desc string) metric.Int64Counter {
		c, err := meter.Int64Counter(name, metric.WithUnit("{message}"), metric.WithDescription(desc))
		if err != nil {
			otel.Handle(err) // c is a no-op counter then
		}
		return c
	}
	in.retried = counter(retriedMessagesMetric, "Messages whose handler failed and that will be delivered again.")
	in.deadLettered = counter(deadLetteredMessagesMetric, "Messages sent to the dead-letter destination after their last attempt.")
	in.dropped = counter(droppedMessagesMetric, "Messages given up without a dead letter.")
	in.hung = counter(hungMessagesMetric, "Messages whose handler ran past the maximum handling time.")
	var err error
	if in.inflight, err = meter.Int64UpDownCounter(inflightMessagesMetric, metric.WithUnit("{message}"),
		metric.WithDescription("Messages in handlers now.")); err != nil {
		otel.Handle(err)
	}
	return in
}

// ObserveOutcomes implements driver.OutcomeObserver: it records the
// outcome metrics of the subscription whose consume operation is op, with
// the attributes of messaging.process.duration (error.type on retried,
// dead-lettered and failed drops) and tracebus.drop.reason on drops. The sets of
// the outcomes without an error are made here, once per subscription.
func (t *Telemetry) ObserveOutcomes(op driver.Operation) driver.OutcomeFunc {
	slow := metricKey(op, opProcess, op.Destination, "", attribute.KeyValue{})
	slow.reason = dropReasonSlowConsumer
	slowSets := t.sets.sets(slow)
	transportSets := func(reason string) *pointSets {
		if reason == dropReasonSlowConsumer || reason == "" {
			return slowSets
		}
		k := slow
		k.reason = reason
		return t.sets.sets(k)
	}
	return func(ctx context.Context, o driver.Outcome) {
		if o.Messages <= 0 {
			return
		}
		n := int64(o.Messages)
		switch o.Kind {
		case driver.OutcomeTransportDropped:
			t.outcomes.dropped.Add(ctx, n, transportSets(o.Reason).plainAdd...)
		case driver.OutcomeHung:
			t.outcomes.hung.Add(ctx, n, t.outcomeSets(op, o, "").plainAdd...)
		case driver.OutcomeRetried:
			t.outcomes.retried.Add(ctx, n, t.outcomeSets(op, o, "").plainAdd...)
		case driver.OutcomeDeadLettered:
			t.outcomes.deadLettered.Add(ctx, n, t.outcomeSets(op, o, "").plainAdd...)
		case driver.OutcomeDropped:
			t.outcomes.dropped.Add(ctx, n, t.outcomeSets(op, o, dropReasonFailed).plainAdd...)
		}
	}
}

// outcomeSets returns the sets of an outcome of messages: their destination
// and partition as messaging.process.duration records them, the error type
// of o.Err, and reason.
func (t *Telemetry) outcomeSets(op driver.Operation, o driver.Outcome, reason string) *pointSets {
	dest, partition := op.Destination, ""
	if len(o.Msgs) > 0 {
		if d := commonDestination(o.Msgs); d != "" {
			dest = d
		}
		partition = commonPartition(op, o.Msgs)
	}
	var et attribute.KeyValue
	if o.Err != nil {
		et = errorType(o.Err)
	}
	k := metricKey(op, opProcess, dest, partition, et)
	k.reason = reason
	return t.sets.sets(k)
}
