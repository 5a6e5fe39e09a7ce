package conformance

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/messagingconv"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
)

// telEnv is one telemetry test: a Recorder, a broker with the telemetry
// middleware over a transport of the suite, and what the expectations are
// derived from. Expected attributes come from three independent sources:
// the transport's Info (system, server, client id), what the test itself
// published and subscribed with, and the messages the handler received
// (delivered id, partition, offset) — never from the spans under test.
type telEnv struct {
	s    Suite
	rec  *testutil.Recorder
	b    *broker.Broker
	info driver.Info
	spy  *opSpy
}

// w3c is the propagator of the suite: W3C Trace Context and Baggage, given
// explicitly so that no test depends on the otel globals.
var w3c = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

func newTelEnv(t *testing.T, s Suite, opts ...middleware.Option) *telEnv {
	t.Helper()
	rec := testutil.NewRecorder(t)
	opts = append([]middleware.Option{
		middleware.WithTracerProvider(rec.TracerProvider),
		middleware.WithMeterProvider(rec.MeterProvider),
		middleware.WithPropagators(w3c),
	}, opts...)
	spy := &opSpy{ops: map[string]driver.Operation{}}
	b := s.Broker(t, broker.WithMiddleware(middleware.NewTelemetry(opts...), spy.middleware()))
	return &telEnv{s: s, rec: rec, b: b, info: b.Transport().Info(), spy: spy}
}

// plainBroker returns a broker on the same backend without tracebus
// telemetry: a producer that knows nothing of OpenTelemetry.
func (e *telEnv) plainBroker(t *testing.T) *broker.Broker {
	t.Helper()
	return e.s.Broker(t)
}

// close closes the broker, which waits until every delivery in flight was
// processed and settled: afterwards every span has ended and every metric
// point was recorded.
func (e *telEnv) close(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e.s.Wait())
	defer cancel()
	if err := e.b.Close(ctx); err != nil {
		t.Fatalf("close broker: %v", err)
	}
}

func (e *telEnv) kafka() bool { return e.info.System == "kafka" }

// opSpy records the consume Operation the broker hands to middleware for
// each subscription, for the group and subscription name a suite's
// SubscribeOptions may set.
type opSpy struct {
	mu  sync.Mutex
	ops map[string]driver.Operation
}

func (s *opSpy) middleware() driver.Middleware {
	return driver.MiddlewareFuncs{Consume: func(next driver.ConsumeFunc) driver.ConsumeFunc {
		return func(ctx context.Context, op driver.Operation, msgs []*broker.Message) error {
			s.mu.Lock()
			s.ops[op.Destination] = op
			s.mu.Unlock()
			return next(ctx, op, msgs)
		}
	}}
}

func (e *telEnv) consumeOp(t *testing.T, subscription string) driver.Operation {
	t.Helper()
	e.spy.mu.Lock()
	defer e.spy.mu.Unlock()
	op, ok := e.spy.ops[subscription]
	if !ok {
		t.Fatalf("no delivery seen for subscription %q", subscription)
	}
	return op
}

// --- expected span attributes ---------------------------------------------

func (e *telEnv) common(name string, typ attribute.KeyValue) []attribute.KeyValue {
	kvs := []attribute.KeyValue{
		semconv.MessagingSystemKey.String(e.info.System),
		semconv.MessagingOperationName(name),
		typ,
	}
	return e.server(kvs)
}

func (e *telEnv) server(kvs []attribute.KeyValue) []attribute.KeyValue {
	if e.info.ServerAddress != "" {
		kvs = append(kvs, semconv.ServerAddress(e.info.ServerAddress))
		if e.info.ServerPort > 0 {
			kvs = append(kvs, semconv.ServerPort(e.info.ServerPort))
		}
	}
	return kvs
}

func (e *telEnv) clientID(kvs []attribute.KeyValue) []attribute.KeyValue {
	if e.info.ClientID != "" {
		kvs = append(kvs, semconv.MessagingClientID(e.info.ClientID))
	}
	return kvs
}

func subscriber(kvs []attribute.KeyValue, op driver.Operation) []attribute.KeyValue {
	if op.Group != "" {
		kvs = append(kvs, semconv.MessagingConsumerGroupName(op.Group))
	}
	if op.Subscription != "" {
		kvs = append(kvs, semconv.MessagingDestinationSubscriptionName(op.Subscription))
	}
	return kvs
}

// published returns the attributes a message given to Publish adds to the
// span covering it alone.
func (e *telEnv) published(kvs []attribute.KeyValue, m *broker.Message) []attribute.KeyValue {
	if m.ID != "" {
		kvs = append(kvs, semconv.MessagingMessageID(m.ID))
	}
	if e.kafka() && m.Key != nil {
		kvs = append(kvs, semconv.MessagingKafkaMessageKey(string(m.Key)))
	}
	if e.kafka() && m.Delivery.Stored {
		kvs = append(kvs,
			semconv.MessagingDestinationPartitionID(strconv.Itoa(int(m.Delivery.Partition))),
			semconv.MessagingKafkaOffset(int(m.Delivery.Offset)))
	}
	return kvs
}

// sendAttrs: the send span of a single publish of m.
func (e *telEnv) sendAttrs(m *broker.Message) []attribute.KeyValue {
	kvs := e.common("send", semconv.MessagingOperationTypeSend)
	kvs = append(kvs, semconv.MessagingDestinationName(m.Destination))
	return e.published(e.clientID(kvs), m)
}

// createAttrs: the create span of m in a batch publish.
func (e *telEnv) createAttrs(m *broker.Message) []attribute.KeyValue {
	kvs := e.common("create", semconv.MessagingOperationTypeCreate)
	kvs = append(kvs, semconv.MessagingDestinationName(m.Destination))
	return e.published(kvs, m)
}

// batchSendAttrs: the send span of a batch of n messages to dest.
func (e *telEnv) batchSendAttrs(dest string, n int) []attribute.KeyValue {
	kvs := e.common("send", semconv.MessagingOperationTypeSend)
	kvs = append(kvs, semconv.MessagingDestinationName(dest), semconv.MessagingBatchMessageCount(n))
	return e.clientID(kvs)
}

// processAttrs: the process span of got, delivered by the subscription op.
func (e *telEnv) processAttrs(op driver.Operation, got *broker.Message) []attribute.KeyValue {
	kvs := e.common("process", semconv.MessagingOperationTypeProcess)
	kvs = append(kvs, semconv.MessagingDestinationName(got.Destination))
	if op.Destination != got.Destination {
		kvs = append(kvs, semconv.MessagingDestinationTemplate(op.Destination))
	}
	kvs = e.clientID(subscriber(kvs, op))
	if got.ID != "" {
		kvs = append(kvs, semconv.MessagingMessageID(got.ID))
	}
	if e.s.Features.Partitions {
		kvs = append(kvs,
			semconv.MessagingDestinationPartitionID(strconv.Itoa(int(got.Delivery.Partition))),
			semconv.MessagingKafkaOffset(int(got.Delivery.Offset)))
	}
	if e.kafka() && got.Key != nil {
		kvs = append(kvs, semconv.MessagingKafkaMessageKey(string(got.Key)))
	}
	return appendAttempt(kvs, got)
}

// appendAttempt adds the delivery attempt the telemetry middleware records
// when the transport counts deliveries.
func appendAttempt(kvs []attribute.KeyValue, got *broker.Message) []attribute.KeyValue {
	if got.Delivery.DeliveryCount > 0 {
		kvs = append(kvs, attribute.Key("tracebus.delivery.attempt").Int(got.Delivery.DeliveryCount))
	}
	return kvs
}

// batchProcessAttrs: the process span of a batch delivery of got, all from
// the destination dest.
func (e *telEnv) batchProcessAttrs(op driver.Operation, dest string, got []*broker.Message) []attribute.KeyValue {
	kvs := e.common("process", semconv.MessagingOperationTypeProcess)
	kvs = append(kvs, semconv.MessagingDestinationName(dest))
	if p, ok := e.samePartition(got); ok {
		kvs = append(kvs, semconv.MessagingDestinationPartitionID(p))
	}
	kvs = e.clientID(subscriber(kvs, op))
	return append(kvs, semconv.MessagingBatchMessageCount(len(got)))
}

// deliveryLinkAttrs: the attributes of the batch process span's link to
// got's creation context.
func (e *telEnv) deliveryLinkAttrs(got *broker.Message, all []*broker.Message) []attribute.KeyValue {
	var kvs []attribute.KeyValue
	if got.ID != "" {
		kvs = append(kvs, semconv.MessagingMessageID(got.ID))
	}
	if e.s.Features.Partitions {
		if _, same := e.samePartition(all); !same {
			kvs = append(kvs, semconv.MessagingDestinationPartitionID(strconv.Itoa(int(got.Delivery.Partition))))
		}
		kvs = append(kvs, semconv.MessagingKafkaOffset(int(got.Delivery.Offset)))
	}
	return appendAttempt(kvs, got)
}

func (e *telEnv) samePartition(got []*broker.Message) (string, bool) {
	if !e.s.Features.Partitions || len(got) == 0 {
		return "", false
	}
	for _, m := range got[1:] {
		if m.Delivery.Partition != got[0].Delivery.Partition {
			return "", false
		}
	}
	return strconv.Itoa(int(got[0].Delivery.Partition)), true
}

// --- expected metric points -------------------------------------------------

// sendPoint returns the attributes of the send metrics for dest:
// operation.duration's (with the operation type) and sent.messages'.
func (e *telEnv) sendPoint(dest string, extra ...attribute.KeyValue) (duration, sent attribute.Set) {
	kvs := []attribute.KeyValue{
		semconv.MessagingSystemKey.String(e.info.System),
		semconv.MessagingOperationName("send"),
		semconv.MessagingDestinationName(dest),
	}
	kvs = append(e.server(kvs), extra...)
	sent = attribute.NewSet(slices.Clone(kvs)...)
	duration = attribute.NewSet(append(kvs, semconv.MessagingOperationTypeSend)...)
	return duration, sent
}

// processPoint returns the attributes of process.duration and
// consumed.messages for deliveries of the subscription op; dest is the
// concrete destination when it is the subscription's, partition the shared
// partition, if any.
func (e *telEnv) processPoint(op driver.Operation, concrete, partition string, extra ...attribute.KeyValue) attribute.Set {
	kvs := []attribute.KeyValue{
		semconv.MessagingSystemKey.String(e.info.System),
		semconv.MessagingOperationName("process"),
	}
	if concrete == op.Destination {
		kvs = append(kvs, semconv.MessagingDestinationName(op.Destination))
	} else {
		kvs = append(kvs, semconv.MessagingDestinationTemplate(op.Destination))
	}
	if partition != "" {
		kvs = append(kvs, semconv.MessagingDestinationPartitionID(partition))
	}
	kvs = subscriber(e.server(kvs), op)
	return attribute.NewSet(append(kvs, extra...)...)
}

// point describes one expected data point: its attributes and its count (a
// histogram's number of recordings, a counter's value).
type point struct {
	attrs attribute.Set
	n     int64
}

// metricsWant lists the expected points of each messaging metric; a metric
// without points is expected to be absent.
type metricsWant struct {
	opDuration, procDuration, sent, consumed []point
}

var durationBounds = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

func histogram(name, unit, desc string, pts []point) metricdata.Metrics {
	dps := make([]metricdata.HistogramDataPoint[float64], len(pts))
	for i, p := range pts {
		dps[i] = metricdata.HistogramDataPoint[float64]{
			Attributes: p.attrs, Count: uint64(p.n), Bounds: durationBounds,
		}
	}
	return metricdata.Metrics{Name: name, Unit: unit, Description: desc, Data: metricdata.Histogram[float64]{
		Temporality: metricdata.CumulativeTemporality, DataPoints: dps,
	}}
}

func counter(name, unit, desc string, pts []point) metricdata.Metrics {
	dps := make([]metricdata.DataPoint[int64], len(pts))
	for i, p := range pts {
		dps[i] = metricdata.DataPoint[int64]{Attributes: p.attrs, Value: p.n}
	}
	return metricdata.Metrics{Name: name, Unit: unit, Description: desc, Data: metricdata.Sum[int64]{
		Temporality: metricdata.CumulativeTemporality, IsMonotonic: true, DataPoints: dps,
	}}
}

// assertMetrics compares every metric the middleware recorded with want,
// with metricdatatest: scope, names, units, descriptions, bucket bounds,
// attribute sets, histogram counts and counter values exactly; timestamps,
// exemplars and measured durations are not compared (durations only for
// consistency: every recording in a bucket, the sum not negative).
func (e *telEnv) assertMetrics(t *testing.T, want metricsWant) {
	t.Helper()
	var (
		od messagingconv.ClientOperationDuration
		pd messagingconv.ProcessDuration
		sm messagingconv.ClientSentMessages
		cm messagingconv.ClientConsumedMessages
	)
	exp := metricdata.ScopeMetrics{Scope: instrumentation.Scope{
		Name: middleware.ScopeName, Version: middleware.Version(), SchemaURL: semconv.SchemaURL,
	}}
	if len(want.opDuration) > 0 {
		exp.Metrics = append(exp.Metrics, histogram(od.Name(), od.Unit(), od.Description(), want.opDuration))
	}
	if len(want.procDuration) > 0 {
		exp.Metrics = append(exp.Metrics, histogram(pd.Name(), pd.Unit(), pd.Description(), want.procDuration))
	}
	if len(want.sent) > 0 {
		exp.Metrics = append(exp.Metrics, counter(sm.Name(), sm.Unit(), sm.Description(), want.sent))
	}
	if len(want.consumed) > 0 {
		exp.Metrics = append(exp.Metrics, counter(cm.Name(), cm.Unit(), cm.Description(), want.consumed))
	}

	rm := e.rec.Metrics(t)
	if len(rm.ScopeMetrics) != 1 {
		t.Fatalf("want metrics of exactly one scope, got %d", len(rm.ScopeMetrics))
	}
	got := scrubDurations(t, semconvMetrics(t, rm.ScopeMetrics[0]))
	metricdatatest.AssertEqual(t, exp, got, metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreExemplars())
}

// semconvMetrics leaves out the middleware's own outcome metrics (tested in
// package middleware), checking only that no message is left counted in
// flight once the handlers are done.
func semconvMetrics(t *testing.T, sm metricdata.ScopeMetrics) metricdata.ScopeMetrics {
	t.Helper()
	out := sm
	out.Metrics = nil
	for _, m := range sm.Metrics {
		if !strings.HasPrefix(m.Name, "tracebus.") {
			out.Metrics = append(out.Metrics, m)
			continue
		}
		if m.Name != "tracebus.consumer.inflight.messages" {
			continue
		}
		if sum, ok := m.Data.(metricdata.Sum[int64]); ok {
			for _, dp := range sum.DataPoints {
				if dp.Value != 0 {
					t.Errorf("%s = %d after the handlers returned", m.Name, dp.Value)
				}
			}
		}
	}
	return out
}

// scrubDurations checks the measured parts of the duration histograms for
// consistency and zeroes them, so that the rest compares exactly.
func scrubDurations(t *testing.T, sm metricdata.ScopeMetrics) metricdata.ScopeMetrics {
	t.Helper()
	out := sm
	out.Metrics = slices.Clone(sm.Metrics)
	for i, m := range out.Metrics {
		h, ok := m.Data.(metricdata.Histogram[float64])
		if !ok {
			continue
		}
		dps := slices.Clone(h.DataPoints)
		for j, dp := range dps {
			var inBuckets uint64
			for _, c := range dp.BucketCounts {
				inBuckets += c
			}
			if inBuckets != dp.Count || dp.Sum < 0 {
				t.Errorf("%s: inconsistent histogram point: count %d, %d in buckets, sum %v", m.Name, dp.Count, inBuckets, dp.Sum)
			}
			dp.BucketCounts, dp.Sum, dp.Min, dp.Max = nil, 0, metricdata.Extrema[float64]{}, metricdata.Extrema[float64]{}
			dps[j] = dp
		}
		h.DataPoints = dps
		out.Metrics[i].Data = h
	}
	return out
}

// --- span assertions --------------------------------------------------------

// assertSpan checks a span's name, kind, attributes (exactly), status and
// that it recorded no events (errors are a status, not exception events).
func assertSpan(t *testing.T, s sdktrace.ReadOnlySpan, name string, kind trace.SpanKind, want []attribute.KeyValue) {
	t.Helper()
	if s.Name() != name {
		t.Errorf("span name %q, want %q", s.Name(), name)
	}
	if s.SpanKind() != kind {
		t.Errorf("span %q: kind %s, want %s", s.Name(), s.SpanKind(), kind)
	}
	assertAttrs(t, "span "+s.Name(), s.Attributes(), want)
	if len(s.Events()) != 0 {
		t.Errorf("span %q: %d events, want none", s.Name(), len(s.Events()))
	}
}

// assertOK checks that a span's status was left Unset.
func assertOK(t *testing.T, s sdktrace.ReadOnlySpan) {
	t.Helper()
	if st := s.Status(); st.Code != codes.Unset {
		t.Errorf("span %q: status %v %q, want Unset", s.Name(), st.Code, st.Description)
	}
}

// assertFailed checks status Error with err's message.
func assertFailed(t *testing.T, s sdktrace.ReadOnlySpan, err error) {
	t.Helper()
	if st := s.Status(); st.Code != codes.Error || st.Description != err.Error() {
		t.Errorf("span %q: status %v %q, want Error %q", s.Name(), st.Code, st.Description, err.Error())
	}
}

func assertAttrs(t *testing.T, what string, got, want []attribute.KeyValue) {
	t.Helper()
	gs, ws := attribute.NewSet(slices.Clone(got)...), attribute.NewSet(slices.Clone(want)...)
	if gs.Len() != len(got) {
		t.Errorf("%s: duplicate attribute keys in %v", what, got)
	}
	if !gs.Equals(&ws) {
		t.Errorf("%s: attributes differ\n got: %s\nwant: %s", what, attrString(gs), attrString(ws))
	}
}

func attrString(s attribute.Set) string {
	var b strings.Builder
	for i, kv := range s.ToSlice() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(kv.Key) + "=" + kv.Value.String())
	}
	return b.String()
}

// assertChild checks that child's parent is parent, in the same trace.
func assertChild(t *testing.T, child, parent sdktrace.ReadOnlySpan) {
	t.Helper()
	if !testutil.IsChildOf(child, parent) {
		t.Errorf("span %q (parent %s) is not a child of %q (%s)", child.Name(), child.Parent().SpanID(), parent.Name(), parent.SpanContext().SpanID())
	}
}

func assertRoot(t *testing.T, s sdktrace.ReadOnlySpan) {
	t.Helper()
	if !testutil.IsRoot(s) {
		t.Errorf("span %q has parent %s, want a root", s.Name(), s.Parent().SpanID())
	}
}

func assertNoLinks(t *testing.T, s sdktrace.ReadOnlySpan) {
	t.Helper()
	if n := len(s.Links()); n != 0 {
		t.Errorf("span %q: %d links, want none", s.Name(), n)
	}
}

// assertLink checks that l points at target and carries exactly want.
func assertLink(t *testing.T, from string, l sdktrace.Link, target trace.SpanContext, want []attribute.KeyValue) {
	t.Helper()
	if l.SpanContext.TraceID() != target.TraceID() || l.SpanContext.SpanID() != target.SpanID() {
		t.Errorf("%s: link to %s/%s, want %s/%s", from, l.SpanContext.TraceID(), l.SpanContext.SpanID(), target.TraceID(), target.SpanID())
	}
	assertAttrs(t, from+" link", l.Attributes, want)
}

// assertSpanCount fails the test unless exactly n spans were recorded.
func (e *telEnv) assertSpanCount(t *testing.T, n int) {
	t.Helper()
	if got := len(e.rec.Spans()); got != n {
		t.Fatalf("want exactly %d spans, got %d:\n%s", n, got, e.rec.Tree())
	}
}

// injected returns the span context written into h with the W3C
// propagator, failing the test when there is none.
func injected(t *testing.T, h broker.Headers) trace.SpanContext {
	t.Helper()
	if !slices.Contains(h.Keys(), "traceparent") {
		t.Errorf("no lower-case traceparent header among %q", h.Keys())
	}
	sc := trace.SpanContextFromContext(w3c.Extract(context.Background(), &h))
	if !sc.IsValid() {
		t.Fatalf("message carries no valid trace context: %v", h)
	}
	return sc
}

// spanWithID returns the recorded span with the given span id.
func (e *telEnv) spanWithID(t *testing.T, id trace.SpanID) sdktrace.ReadOnlySpan {
	t.Helper()
	for _, s := range e.rec.Spans() {
		if s.SpanContext().SpanID() == id {
			return s
		}
	}
	t.Fatalf("no recorded span %s:\n%s", id, e.rec.Tree())
	return nil
}
