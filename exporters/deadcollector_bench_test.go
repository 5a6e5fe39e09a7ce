package exporters_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/testutil"
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
	br, p, handled := otlpBroker(b, endpoint)
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
	testutil.Eventually(b, time.Minute, func() bool { return handled.Load() == int64(n) }, "every message handled")
	b.StopTimer()
	_ = br.Close(ctx)
	// A dead collector keeps Shutdown until its deadline.
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_ = p.Shutdown(sctx)
}
