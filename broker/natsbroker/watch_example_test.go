package natsbroker_test

import (
	"context"
	"fmt"
	"log"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/natsbroker"
)

// Config is the value a service keeps under the keys "config.<name>" of
// a key-value bucket.
type Config struct {
	Replicas int `json:"replicas"`
}

// A key-value watch: the handler gets the current value of every key the
// pattern matches, then every change, decoded as Config; a deleted key
// comes as the zero Config with Delivery.Deleted set. The bucket is
// created by the operator (here by the example): the transport creates
// none. It keeps some history, so that an update replaced before the watch
// read it is still there to be delivered.
func ExampleWatchKV() {
	srv := embeddedServer()
	defer srv.Shutdown()

	tr, err := natsbroker.Connect(srv.URL())
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	js, err := jetstream.New(tr.Conn())
	if err != nil {
		log.Fatal(err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "settings", History: 5})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := kv.PutString(ctx, "config.api", `{"replicas":2}`); err != nil {
		log.Fatal(err)
	}

	b := broker.New(tr)
	defer b.Close(ctx)
	done := make(chan struct{})
	err = broker.Handle(b, "config.*", func(ctx context.Context, c Config) error {
		m := broker.MessageFromContext(ctx)
		fmt.Printf("%s revision %d: %+v deleted=%v\n", m.Destination, m.Delivery.Sequence, c, m.Delivery.Deleted)
		if m.Delivery.Deleted {
			close(done)
		}
		return nil
	}, natsbroker.WatchKV("settings"))
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		log.Fatal(err)
	}

	if _, err := kv.PutString(ctx, "config.api", `{"replicas":3}`); err != nil {
		log.Fatal(err)
	}
	if _, err := kv.PutString(ctx, "secrets.api", `not watched`); err != nil {
		log.Fatal(err)
	}
	if err := kv.Delete(ctx, "config.api"); err != nil {
		log.Fatal(err)
	}
	<-done
	// Output:
	// config.api revision 1: {Replicas:2} deleted=false
	// config.api revision 2: {Replicas:3} deleted=false
	// config.api revision 4: {Replicas:0} deleted=true
}
