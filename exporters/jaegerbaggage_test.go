package exporters_test

import (
	"context"
	"testing"

	otelbaggage "go.opentelemetry.io/otel/baggage"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tracebus/tracebus/baggage"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/exporters"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
)

// With OTEL_PROPAGATORS=jaeger,jaegerbaggage a message carries its trace as
// uber-trace-id and its baggage as uberctx- headers, and a handler reads
// the baggage back.
func TestJaegerBaggageThroughEnvironment(t *testing.T) {
	t.Setenv("OTEL_PROPAGATORS", "jaeger,jaegerbaggage")
	ctx := context.Background()
	p, err := exporters.Setup(ctx, exporters.WithoutGlobal(), exporters.WithMemory(tracetest.NewSpanRecorder(), sdkmetric.NewManualReader()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	tel := middleware.NewTelemetry(middleware.WithTracerProvider(p.TracerProvider),
		middleware.WithMeterProvider(p.MeterProvider), middleware.WithPropagators(p.Propagator))
	b := broker.New(testutil.Memory(t), broker.WithMiddleware(tel))
	type seen struct{ traceHeader, uberctx, w3c, tenant string }
	got := make(chan seen, 1)
	if err := b.Subscribe("orders", func(ctx context.Context, msg *broker.Message) error {
		got <- seen{msg.Headers.Get("uber-trace-id"), msg.Headers.Get("uberctx-tenant"),
			msg.Headers.Get("traceparent") + msg.Headers.Get("baggage"), baggage.FromContext(ctx).Get("tenant")}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	m, err := otelbaggage.NewMemberRaw("tenant", "acme corp")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := otelbaggage.New(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(otelbaggage.ContextWithBaggage(ctx, bag), &broker.Message{Destination: "orders"}); err != nil {
		t.Fatal(err)
	}
	s := <-got
	if s.traceHeader == "" || s.uberctx != "acme%20corp" || s.w3c != "" || s.tenant != "acme corp" {
		t.Errorf("headers uber-trace-id %q, uberctx-tenant %q, W3C %q; handler baggage tenant %q",
			s.traceHeader, s.uberctx, s.w3c, s.tenant)
	}
}
