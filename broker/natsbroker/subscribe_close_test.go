package natsbroker_test

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// Subscribe racing Close, on core NATS and JetStream: whichever wins,
// nothing is left running (no goroutine, no subscription on the
// connection, no panic), and a Subscribe that loses fails with
// broker.ErrClosed, as does every Subscribe after Close.
func TestSubscribeRacesClose(t *testing.T) {
	srv := natstest.New(t)
	createStream(t, srv, jetStreamClient(t, srv), "RACE", "race.js.>")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	deliver := func(ctx context.Context, _ []*broker.Message, ack driver.Acknowledger) { _ = ack.Ack(ctx) }
	var won, meanwhile int
	for i := range 40 {
		nc := srv.Connect(t)
		tr := newTransport(t, nc, natsbroker.WithJetStream("race.js.>"))
		dest := "race.core." + strconv.Itoa(i)
		if i%2 == 1 {
			dest = "race.js." + strconv.Itoa(i)
		}
		// nats.go keeps one subscription per connection for the replies
		// of requests (JetStream API calls): make it before counting.
		js, jsErr := jetstream.New(nc)
		if jsErr != nil {
			t.Fatal(jsErr)
		}
		if _, err := js.AccountInfo(ctx); err != nil {
			t.Fatal(err)
		}
		before := nc.NumSubscriptions()
		var (
			wg     sync.WaitGroup
			sub    driver.Subscription
			subErr error
		)
		began := make(chan struct{})
		wg.Go(func() {
			close(began)
			sub, subErr = tr.Subscribe(ctx, driver.SubscriptionSpec{Destination: dest, Concurrency: 2}, deliver)
		})
		wg.Go(func() {
			// Close at varying points of Subscribe: before it checks the
			// transport, while it sets up, after it registered.
			<-began
			for range i % 8 * 20 {
				runtime.Gosched()
			}
			must(t, tr.Close(ctx))
		})
		wg.Wait()
		switch {
		case subErr == nil:
			won++
		case strings.Contains(subErr.Error(), "meanwhile"):
			meanwhile++
		}
		if subErr != nil && !errors.Is(subErr, broker.ErrClosed) {
			t.Fatalf("%s: Subscribe racing Close: %v", dest, subErr)
		}
		n := nc.NumSubscriptions()
		if sub != nil {
			// It won: Close closed it, so closing again is a no-op.
			must(t, sub.Close(ctx))
		}
		if n != before {
			t.Fatalf("%s: %d subscriptions on the connection after Close, %d before (subscribe error %v)", dest, n, before, subErr)
		}
		_, err := tr.Subscribe(ctx, driver.SubscriptionSpec{Destination: dest}, deliver)
		if !errors.Is(err, broker.ErrClosed) || !strings.HasPrefix(err.Error(), "natsbroker: subscribe to "+dest) {
			t.Fatalf("Subscribe after Close: %v", err)
		}
		nc.Close()
	}
	t.Logf("of 40: Subscribe won %d, lost while setting up %d, lost at once %d", won, meanwhile, 40-won-meanwhile)
}
