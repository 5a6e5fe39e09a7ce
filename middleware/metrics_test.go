package middleware_test

import (
	"context"
	"strconv"
	"sync"
	"testing"

	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
)

// Many destinations, published to concurrently: more attribute sets than
// the middleware caches, every point still exact.
func TestMetricsManyDestinationsConcurrently(t *testing.T) {
	tel, rec := newTel(t)
	pub := tel.WrapPublish(ok)
	const dests, workers = 1500, 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < dests; i += workers {
				d := "d" + strconv.Itoa(i)
				op := driver.Operation{Kind: driver.OpPublish, System: "memory", Destination: d}
				for range 2 {
					if err := pub(context.Background(), op, []*broker.Message{{Destination: d}}); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	sent := points(t, rec, "messaging.client.sent.messages")
	dur := points(t, rec, "messaging.client.operation.duration")
	if len(sent) != dests || len(dur) != dests {
		t.Fatalf("%d sent and %d duration points, want %d each", len(sent), len(dur), dests)
	}
	for i := range dests {
		d := "d" + strconv.Itoa(i)
		if n := sent[set(semconv.MessagingSystemKey.String("memory"), semconv.MessagingOperationName("send"), semconv.MessagingDestinationName(d))]; n != 2 {
			t.Fatalf("sent.messages for %s = %d, want 2", d, n)
		}
	}
}
