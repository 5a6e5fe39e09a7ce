package exporters_test

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/memory"
	"github.com/tracebus/tracebus/exporters"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil/otlptest"
)

// BenchmarkCollector measures a traced broker (publish and consume on the
// memory transport, 64 KiB message ids) exporting over OTLP/gRPC to a
// healthy collector and to one that never answers. The target is
// the dead collector within 10 % of the healthy one: spans are dropped,
// never waited for. Compare with
//
//	go test -run '^$' -bench BenchmarkCollector -count 6 ./exporters | benchstat -col /collector -
func BenchmarkCollector(b *testing.B) {
	b.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "60000")
	b.Setenv("OTEL_BSP_SCHEDULE_DELAY", "10")
	b.Run("collector=healthy", func(b *testing.B) {
		benchCollector(b, otlptest.StartGRPC(b).URL)
	})
	b.Run("collector=dead", func(b *testing.B) {
		endpoint, stop := startHangingGRPC(b)
		defer stop()
		benchCollector(b, endpoint)
	})
}

func benchCollector(b *testing.B, endpoint string) {
	ctx := context.Background()
	p, err := exporters.Setup(ctx, exporters.WithOTLP(exporters.ProtocolGRPC, endpoint), exporters.WithoutGlobal())
	if err != nil {
		b.Fatal(err)
	}
	tr, err := memory.New()
	if err != nil {
		b.Fatal(err)
	}
	br := broker.New(tr, broker.WithMiddleware(middleware.NewTelemetry(
		middleware.WithTracerProvider(p.TracerProvider),
		middleware.WithMeterProvider(p.MeterProvider),
		middleware.WithPropagators(p.Propagator),
	)))
	var handled atomic.Int64
	all := make(chan struct{})
	var want atomic.Int64
	want.Store(-1)
	if err := br.Subscribe("orders", func(context.Context, *broker.Message) error {
		if handled.Add(1) == want.Load() {
			close(all)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	if err := br.Start(ctx); err != nil {
		b.Fatal(err)
	}
	id := strings.Repeat("i", 64<<10)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		msg := &broker.Message{Destination: "orders", ID: strconv.Itoa(n) + id, Body: []byte("order")}
		if err := br.Publish(ctx, msg); err != nil {
			b.Fatal(err)
		}
		n++
	}
	want.Store(int64(n))
	if handled.Load() < int64(n) {
		<-all
	}
	b.StopTimer()
	_ = br.Close(ctx)
	// A dead collector keeps Shutdown until its deadline.
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_ = p.Shutdown(sctx)
}
