package broker_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/kafkabroker"
	"github.com/tracebus/tracebus/broker/memory"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/kafkatest"
	"github.com/tracebus/tracebus/testutil/natstest"
)

type logLine struct {
	Level string `json:"level"`
	Text  string `json:"text"`
}

// templateTransports are the transports with subject wildcards, on which
// destination templates work both ways.
func templateTransports(t *testing.T) map[string]func(t *testing.T) driver.Transport {
	return map[string]func(t *testing.T) driver.Transport{
		"memory": func(t *testing.T) driver.Transport {
			tr, err := memory.New()
			must(t, err)
			return tr
		},
		"nats": func(t *testing.T) driver.Transport {
			tr, err := natsbroker.New(natstest.New(t).Connect(t))
			must(t, err)
			return tr
		},
	}
}

// A subscription to "logs.{level}.{app}" receives what a publisher to
// "logs.{level}.{app}" sends, filled from each value; the handler reads the
// parameters with Param; the send span names the concrete subject and the
// template, and so does the process span, whose name is the template's.
func TestDestinationTemplateRoundTrip(t *testing.T) {
	for name, newTransport := range templateTransports(t) {
		t.Run(name, func(t *testing.T) {
			rec := testutil.NewRecorder(t)
			tel := middleware.NewTelemetry(middleware.WithTracerProvider(rec.TracerProvider), middleware.WithMeterProvider(rec.MeterProvider))
			b := broker.New(newTransport(t), broker.WithMiddleware(tel), broker.WithLogger(discardLogger()))

			type got struct{ level, app, missing, text string }
			inbox := testkit.NewInbox[got](30 * time.Second)
			must(t, broker.Handle(b, "logs.{level}.{app}", func(ctx context.Context, l logLine) error {
				inbox.Put(got{broker.Param(ctx, "level"), broker.Param(ctx, "app"), broker.Param(ctx, "nope"), l.Text})
				return nil
			}))
			pub, err := broker.NewPublisher[logLine](b, "logs.{level}.{app}", broker.ParamFunc(func(l logLine, name string) string {
				if name == "app" {
					return "billing"
				}
				return l.Level
			}))
			must(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			must(t, b.Start(ctx))
			defer b.Close(context.Background())

			must(t, pub.Publish(ctx, logLine{Level: "warn", Text: "disk"}))
			if g := inbox.Next(t); g != (got{"warn", "billing", "", "disk"}) {
				t.Fatalf("handler saw %+v", g)
			}
			must(t, b.Close(ctx))

			send := rec.SpanByName(t, "send logs.{level}.{app}")
			wantAttrs(t, send, map[string]string{
				"messaging.destination.name":     "logs.warn.billing",
				"messaging.destination.template": "logs.{level}.{app}",
			})
			process := rec.SpanByName(t, "process logs.{level}.{app}")
			wantAttrs(t, process, map[string]string{
				"messaging.destination.name":     "logs.warn.billing",
				"messaging.destination.template": "logs.{level}.{app}",
			})
			if process.Parent().SpanID() != send.SpanContext().SpanID() {
				t.Errorf("process span's parent %v, want the send span %v", process.Parent().SpanID(), send.SpanContext().SpanID())
			}
			if send.SpanKind() != trace.SpanKindProducer || process.SpanKind() != trace.SpanKindConsumer {
				t.Errorf("kinds %v, %v", send.SpanKind(), process.SpanKind())
			}
			wantTemplateMetric(t, rec, "messaging.client.operation.duration", "logs.{level}.{app}")
			wantTemplateMetric(t, rec, "messaging.process.duration", "logs.{level}.{app}")
		})
	}
}

// wantTemplateMetric checks that every point of the histogram name is
// keyed by the template, never by a concrete destination.
func wantTemplateMetric(t *testing.T, rec *testutil.Recorder, name, template string) {
	t.Helper()
	m, ok := rec.Metric(t, name)
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	h, ok := m.Data.(metricdata.Histogram[float64])
	if !ok || len(h.DataPoints) == 0 {
		t.Fatalf("%s: %T without points", name, m.Data)
	}
	for _, p := range h.DataPoints {
		v, _ := p.Attributes.Value("messaging.destination.template")
		if _, concrete := p.Attributes.Value("messaging.destination.name"); concrete || v.AsString() != template {
			t.Errorf("%s point %v: want the template %q and no destination name", name, p.Attributes.ToSlice(), template)
		}
	}
}

func wantAttrs(t *testing.T, s sdktrace.ReadOnlySpan, want map[string]string) {
	t.Helper()
	have := map[attribute.Key]string{}
	for _, kv := range s.Attributes() {
		have[kv.Key] = kv.Value.String()
	}
	for k, v := range want {
		if have[attribute.Key(k)] != v {
			t.Errorf("span %q: %s = %q, want %q", s.Name(), k, have[attribute.Key(k)], v)
		}
	}
}

// A batch handler reads the parameter its messages share, and "" for one
// they do not; a batch publish through a template publisher is one send
// span carrying the template.
func TestDestinationTemplateBatch(t *testing.T) {
	rec := testutil.NewRecorder(t)
	tel := middleware.NewTelemetry(middleware.WithTracerProvider(rec.TracerProvider), middleware.WithMeterProvider(rec.MeterProvider))
	b := memoryBroker(broker.WithMiddleware(tel), broker.WithLogger(discardLogger()))
	type got struct{ region, kind string }
	inbox := testkit.NewInbox[got](30 * time.Second)
	must(t, b.SubscribeBatch("orders.{region}.{kind}", func(ctx context.Context, msgs []*broker.Message) error {
		inbox.Put(got{broker.Param(ctx, "region"), broker.Param(ctx, "kind")})
		return nil
	}, broker.Batch(2, 10*time.Second)))
	pub := broker.Must(broker.NewPublisher[order](b, "orders.{region}.{kind}", broker.ParamFunc(func(o order, name string) string {
		if name == "region" {
			return "eu"
		}
		return o.ID
	})))
	ctx := context.Background()
	must(t, b.Start(ctx))
	defer b.Close(ctx)
	must(t, pub.PublishBatch(ctx, []order{{ID: "new"}, {ID: "paid"}}))
	if g := inbox.Next(t); g != (got{"eu", ""}) {
		t.Fatalf("batch handler saw %+v, want region eu and no common kind", g)
	}
	send := rec.SpanByName(t, "send orders.{region}.{kind}")
	wantAttrs(t, send, map[string]string{"messaging.destination.template": "orders.{region}.{kind}", "messaging.batch.message_count": "2"})
}

// Malformed templates fail Subscribe and NewPublisher with ErrInvalid;
// parameter values that are empty or would change the subject fail Publish
// with ErrInvalid and send nothing.
func TestDestinationTemplateErrors(t *testing.T) {
	b := memoryBroker(broker.WithLogger(discardLogger()))
	noop := func(context.Context, *broker.Message) error { return nil }
	for _, dest := range []string{"orders.{region", "orders.region}", "orders.{}", "orders.x{region}", "orders.{re gion}", "a.{x}.{x}", "orders.{a.b}"} {
		if err := b.Subscribe(dest, noop); !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("Subscribe(%q): %v, want ErrInvalid", dest, err)
		}
		if _, err := broker.NewPublisher[logLine](b, dest, broker.ParamFunc(func(logLine, string) string { return "x" })); !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("NewPublisher(%q): %v, want ErrInvalid", dest, err)
		}
	}
	// Without ParamFunc the parameters come from the ctx of each call:
	// outside a handler there are none, which Publish refuses, naming the
	// parameter.
	fromCtx := broker.Must(broker.NewPublisher[logLine](b, "logs.{level}"))
	if err := fromCtx.Publish(context.Background(), logLine{}); !errors.Is(err, broker.ErrInvalid) || !strings.Contains(err.Error(), `"level" has no value`) {
		t.Errorf("template without ParamFunc, outside a handler: %v, want ErrInvalid naming the parameter", err)
	}
	if _, err := broker.NewPublisher[logLine](b, "logs", broker.ParamFunc(func(logLine, string) string { return "x" })); !errors.Is(err, broker.ErrInvalid) {
		t.Errorf("ParamFunc without template: %v, want ErrInvalid", err)
	}
	if _, err := broker.NewPublisher[logLine](b, "logs.{level}", broker.ParamFunc(func(order, string) string { return "x" })); !errors.Is(err, broker.ErrInvalid) {
		t.Errorf("ParamFunc of another type: %v, want ErrInvalid", err)
	}

	// Everything under logs is seen here: a bad value must not reach any
	// subject, so the first message to arrive is the good one sent last.
	inbox := testkit.NewInbox[string](30 * time.Second)
	must(t, b.Subscribe("logs.>", func(_ context.Context, m *broker.Message) error {
		inbox.Put(m.Destination)
		return nil
	}))
	pub := broker.Must(broker.NewPublisher[logLine](b, "logs.{level}.end", broker.ParamFunc(func(l logLine, _ string) string { return l.Level })))
	ctx := context.Background()
	must(t, b.Start(ctx))
	defer b.Close(ctx)
	for _, bad := range []string{"", "a.b", "*", ">", "a b", "tab\t", "nl\n", "\x00"} {
		if err := pub.Publish(ctx, logLine{Level: bad}); !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("Publish with level %q: %v, want ErrInvalid", bad, err)
		}
		if err := pub.PublishBatch(ctx, []logLine{{Level: "ok"}, {Level: bad}}); !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("PublishBatch with level %q: %v, want ErrInvalid", bad, err)
		}
	}
	must(t, pub.Publish(ctx, logLine{Level: "info"}))
	if got := inbox.Next(t); got != "logs.info.end" {
		t.Fatalf("first delivery went to %q, want logs.info.end", got)
	}
}

// Kafka topics have no wildcards: a template subscription fails with
// ErrInvalid saying why, while a template publisher fills concrete topics.
func TestDestinationTemplateKafka(t *testing.T) {
	cluster := kafkatest.New(t)
	tr, err := kafkabroker.New(cluster.TransportOptions()...)
	must(t, err)
	// The publish stops in this middleware, which keeps the destination
	// the publisher filled: no topic needs to exist.
	var filled string
	stop := errors.New("stopped before the transport")
	b := broker.New(tr, broker.WithLogger(discardLogger()), broker.WithMiddleware(driver.MiddlewareFuncs{
		Publish: func(driver.PublishFunc) driver.PublishFunc {
			return func(_ context.Context, _ driver.Operation, msgs []*broker.Message) error {
				filled = msgs[0].Destination
				return stop
			}
		},
	}))
	defer b.Close(context.Background())
	err = b.Subscribe("orders.{region}", func(context.Context, *broker.Message) error { return nil })
	if !errors.Is(err, broker.ErrInvalid) {
		t.Fatalf("Subscribe of a template on Kafka: %v, want ErrInvalid", err)
	}
	t.Log(err)
	if len(b.Endpoints()) != 0 {
		t.Errorf("refused subscription registered %+v", b.Endpoints())
	}
	pub := broker.Must(broker.NewPublisher[order](b, "orders.{region}", broker.ParamFunc(func(o order, _ string) string { return o.ID })))
	if err := pub.Publish(context.Background(), order{ID: "eu"}); !errors.Is(err, stop) {
		t.Fatalf("Publish: %v, want the middleware's error", err)
	}
	if filled != "orders.eu" {
		t.Errorf("published to %q, want orders.eu", filled)
	}
}

// A parameter ParamFunc does not give is taken from the handler's ctx: a
// handler of "orders.{region}.created" publishes to "invoices.{region}"
// and "invoices.{region}.{kind}" (kind from the value) in its region; the
// send spans carry the publisher's template.
func TestDestinationTemplateFromHandlerContext(t *testing.T) {
	rec := testutil.NewRecorder(t)
	tel := middleware.NewTelemetry(middleware.WithTracerProvider(rec.TracerProvider), middleware.WithMeterProvider(rec.MeterProvider))
	b := memoryBroker(broker.WithMiddleware(tel), broker.WithLogger(discardLogger()))
	byRegion := broker.Must(broker.NewPublisher[invoice](b, "invoices.{region}"))
	byKind := broker.Must(broker.NewPublisher[invoice](b, "invoices.{region}.{kind}", broker.ParamFunc(func(i invoice, name string) string {
		if name == "kind" {
			return i.Order
		}
		return "" // region: the handler's
	})))
	must(t, broker.Handle(b, "orders.{region}.created", func(ctx context.Context, o order) error {
		if err := byRegion.Publish(ctx, invoice{Order: o.ID}); err != nil {
			return err
		}
		return byKind.PublishBatch(ctx, []invoice{{Order: "paid"}})
	}))
	inbox := testkit.NewInbox[string](30 * time.Second)
	must(t, b.Subscribe("invoices.>", func(_ context.Context, m *broker.Message) error {
		inbox.Put(m.Destination)
		return nil
	}))
	ctx := context.Background()
	must(t, b.Start(ctx))
	defer b.Close(ctx)

	must(t, broker.Must(broker.NewPublisher[order](b, "orders.eu.created")).Publish(ctx, order{ID: "A-1"}))
	got := inbox.TakeN(t, 2)
	slices.Sort(got)
	if want := []string{"invoices.eu", "invoices.eu.paid"}; !slices.Equal(got, want) {
		t.Fatalf("published to %q, want %q", got, want)
	}
	must(t, b.Close(ctx))
	wantAttrs(t, rec.SpanByName(t, "send invoices.{region}"), map[string]string{
		"messaging.destination.name":     "invoices.eu",
		"messaging.destination.template": "invoices.{region}",
	})
	wantAttrs(t, rec.SpanByName(t, "send invoices.{region}.{kind}"), map[string]string{
		"messaging.destination.template": "invoices.{region}.{kind}",
	})
}

// A Requester on a template fills it as a Publisher does, from the value
// and the ctx, and its request spans carry the template as publishers'
// send spans do; the reply's receipt does not.
func TestDestinationTemplateRequester(t *testing.T) {
	rec := testutil.NewRecorder(t)
	tel := middleware.NewTelemetry(middleware.WithTracerProvider(rec.TracerProvider), middleware.WithMeterProvider(rec.MeterProvider))
	b := memoryBroker(broker.WithMiddleware(tel), broker.WithLogger(discardLogger()))
	must(t, broker.HandleResult(b, "quotes.{region}", func(ctx context.Context, o order) (invoice, error) {
		return invoice{Order: o.ID + "@" + broker.Param(ctx, "region")}, nil
	}))
	quotes := broker.Must(broker.NewRequester[order, invoice](b, "quotes.{region}", broker.ParamFunc(func(o order, _ string) string { return o.ID })))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must(t, b.Start(ctx))
	defer b.Close(context.Background())

	inv, err := quotes.Request(ctx, order{ID: "eu"})
	must(t, err)
	if inv.Order != "eu@eu" {
		t.Errorf("reply %+v, want the replier's region", inv)
	}
	must(t, b.Close(ctx))
	var withTemplate []string
	for _, s := range rec.Spans() {
		for _, kv := range s.Attributes() {
			if kv.Key == "messaging.destination.template" && kv.Value.AsString() == "quotes.{region}" {
				withTemplate = append(withTemplate, s.Name()+"/"+s.SpanKind().String())
			}
		}
	}
	slices.Sort(withTemplate)
	// The request's span, named after the template as well, its send span
	// and the replier's process span; not the reply's send and receipt.
	if want := []string{"process quotes.{region}/consumer", "request quotes.{region}/client", "send quotes.{region}/producer"}; !slices.Equal(withTemplate, want) {
		t.Errorf("spans with the template %q, want %q\n%s", withTemplate, want, rec.Tree())
	}
	wantAttrs(t, rec.SpanByName(t, "send quotes.{region}"), map[string]string{"messaging.destination.name": "quotes.eu"})
	wantAttrs(t, rec.SpanByName(t, "request quotes.{region}"), map[string]string{"messaging.destination.name": "quotes.eu"})
}
