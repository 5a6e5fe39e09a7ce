package exporters_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.uber.org/goleak"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/exporters"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/testutil"
)

// Bounds of the dead-collector heap test, made of the SDK's and our
// constants rather than of measurements.
const (
	// spansPerMessage: a send span and a process span.
	spansPerMessage = 2
	// spansHeld is how many spans a dead collector can make the process
	// hold: the batch processor's full queue plus the batch stuck in the
	// hanging export (the SDK's default queue and batch sizes).
	spansHeld = sdktrace.DefaultMaxQueueSize + sdktrace.DefaultMaxExportBatchSize
	// spanOverhead is a generous upper bound of what one span of ours
	// costs besides its message id: the span's own structure, its dozen
	// attributes with short values (the destination, the system, the
	// operation), and its share of the export request the hanging
	// collector is holding on to.
	spanOverhead = 4 << 10
	// heapSlack covers the gRPC connection, the metric pipeline and
	// allocator fragmentation.
	heapSlack = 16 << 20
)

// TestDeadCollectorHeapBounded sends messages with 64 KiB ids through a
// traced broker whose collector accepts connections and never answers.
// Every span carries the id twice (send and process), so without the
// attribute cap the spans held by the batch processor would keep about
// spansHeld × 64 KiB (160 MiB) alive; with a cap that kept the prefix as a
// substring of the id (as the middleware did until this test found it), 66
// MiB. With the cap copying the prefix, the heap after the run stays
// within spansHeld × (messageAttributeLimit + spanOverhead) plus a
// fixed slack: bounded by our constants, not by the sender.
// messageAttributeLimit is the middleware's default cap on a message id in
// span attributes (see middleware.WithMessageAttributeLimit).
const messageAttributeLimit = 256

func TestDeadCollectorHeapBounded(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	endpoint, stop := startHangingGRPC(t)
	defer stop()

	ctx := context.Background()
	b, p, handled := otlpBroker(t, endpoint)
	// More spans than the processor can hold, so that the queue is full
	// and spans are being dropped when the heap is measured.
	n := testkit.Scale(2*spansHeld/spansPerMessage, 50_000)
	const idSize = 64 << 10
	before := heapInuse()
	id := make([]byte, idSize)
	for i := range n {
		// A distinct 64 KiB id per message: nothing is shared between spans.
		copy(id, fmt.Sprintf("%08d", i))
		for j := 8; j < len(id); j++ {
			id[j] = 'a' + byte((i+j)%26)
		}
		if err := b.Publish(ctx, &broker.Message{Destination: "orders", ID: string(id), Body: []byte{byte(i)}}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	// A hang guard, not a speed check.
	testutil.Eventually(t, 60*time.Second, func() bool { return handled.Load() == int64(n) }, "every message handled")
	after := heapInuse()
	grown := int64(after) - int64(before)
	bound := int64(spansHeld*(messageAttributeLimit+spanOverhead) + heapSlack)
	t.Logf("%d messages with %d KiB ids: heap in use %.1f MiB before, %.1f MiB after (grew %.1f MiB; bound %.1f MiB, uncapped ids alone would be %.1f MiB)",
		n, idSize>>10, mib(before), mib(after), float64(grown)/(1<<20), float64(bound)/(1<<20), float64(spansHeld*idSize)/(1<<20))
	if grown > bound {
		t.Errorf("heap grew by %d bytes with a dead collector, more than the bound of %d", grown, bound)
	}

	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := p.Shutdown(sctx); !errors.Is(err, exporters.ErrNotExported) {
		t.Fatalf("Shutdown = %v, want a report of the spans it could not export", err)
	}
}

// heapInuse returns the bytes of heap in use after a full collection.
func heapInuse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
