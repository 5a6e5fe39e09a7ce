package broker_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/codec"
	"github.com/tracebus/tracebus/testutil"
)

// Building a publisher or a requester for one call, as a handler or a test
// may do inline, leaves nothing behind: the broker keeps one endpoint per
// kind of publisher, and the heap does not grow with the number of builds.
func TestInlinePublishersDoNotAccumulate(t *testing.T) {
	const builds = 100_000
	b := broker.New(testutil.Memory(t))
	must(t, b.Start(t.Context()))
	defer func() { must(t, b.Close(context.Background())) }()

	publish := func() {
		if err := broker.Must(broker.NewPublisher[order](b, "orders.eu")).Publish(t.Context(), order{ID: "1"}); err != nil {
			t.Fatal(err)
		}
		_ = broker.Must(broker.NewRequester[order, invoice](b, "billing.quote"))
	}
	publish() // the first of each kind registers its endpoint
	before := heapInUse()
	for range builds {
		publish()
	}
	after := heapInUse()

	if n := len(b.Endpoints()); n != 2 {
		t.Errorf("%d endpoints after %d builds of one publisher and one requester, want 2", n, builds)
	}
	// Each build allocates a few hundred bytes that the collector takes
	// back; 100,000 endpoints kept would be well over 10 MiB.
	const bound = 4 << 20
	if grown := after - before; grown > bound {
		t.Errorf("heap grew by %d KiB over %d builds, want less than %d KiB", grown>>10, builds, bound>>10)
	}
}

// heapInUse is the live heap after a full collection.
func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// Publishers that differ in what a document shows about them (payload,
// codec, key, description, reply type, destination) are endpoints of their
// own; building one of them again adds nothing.
func TestPublisherEndpointsAreDistinct(t *testing.T) {
	b := broker.New(testutil.Memory(t))
	r := broker.NewRouter(b, "orders.")
	for range 2 {
		broker.Must(broker.NewPublisher[order](b, "orders.eu"))
		broker.Must(broker.NewPublisher[order](r, "eu")) // the same destination through a router
		broker.Must(broker.NewPublisher[invoice](b, "orders.eu"))
		broker.Must(broker.NewPublisher[order](b, "orders.us"))
		broker.Must(broker.NewPublisher[order](b, "orders.eu", broker.Describe("", "EU orders")))
		broker.Must(broker.NewPublisher[order](b, "orders.eu", broker.KeyFunc(func(o order) string { return o.ID })))
		broker.Must(broker.NewPublisher[order](b, "orders.eu", broker.Codec(codec.Text)))
		broker.Must(broker.NewRequester[order, invoice](b, "orders.eu"))
	}
	if n := len(b.Endpoints()); n != 7 {
		for _, e := range b.Endpoints() {
			t.Logf("%+v", e)
		}
		t.Errorf("%d endpoints, want 7", n)
	}
}
