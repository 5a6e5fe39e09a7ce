package asyncapi_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/asyncapi"
	"github.com/tracebus/tracebus/broker/memory"
)

// Example documents a broker's subscriptions and serves the document: JSON
// and YAML for tools, an HTML page for people.
func Example() {
	tr, err := memory.New()
	if err != nil {
		log.Fatal(err)
	}
	b := broker.New(tr)
	defer b.Close(context.Background())
	_ = b.Subscribe("orders.*.created", func(ctx context.Context, msg *broker.Message) error {
		return nil
	}, broker.Group("billing"), broker.Describe("Bill orders", "Bills every new order."))

	doc, err := asyncapi.New(
		asyncapi.WithInfo(asyncapi.Info{Title: "billing", Version: "1.0.0"}),
	).Build(b)
	if err != nil {
		fmt.Println(err)
		return
	}
	op := doc.Operations["receive_orders_any_created_billing"]
	ch := doc.Channels["orders_any_created"]
	fmt.Println(op.Action, *ch.Address, op.Description)

	// In a service: http.Handle("/asyncapi/", http.StripPrefix("/asyncapi", asyncapi.NewHandler(doc)))
	srv := httptest.NewServer(http.StripPrefix("/asyncapi", asyncapi.NewHandler(doc)))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/asyncapi/asyncapi.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	y, _ := io.ReadAll(resp.Body)
	first, _, _ := strings.Cut(string(y), "\n")
	fmt.Println(resp.Header.Get("Content-Type"), first)
	// Output:
	// receive orders.{token2}.created Bills every new order.
	// application/yaml asyncapi: 3.0.0
}

// Example_documentControl titles and describes a channel, and leaves a
// debugging tap out of the document.
func Example_documentControl() {
	tr, err := memory.New()
	if err != nil {
		log.Fatal(err)
	}
	b := broker.New(tr)
	defer b.Close(context.Background())
	nop := func(ctx context.Context, msg *broker.Message) error { return nil }
	_ = b.Subscribe("orders.*", nop,
		broker.DescribeChannel("Orders", "Every order placed, by region."),
		broker.Describe("Bill orders", "Bills every new order."))
	_ = b.Subscribe(">", nop, broker.Undocumented()) // a tap, not part of the API

	doc, err := asyncapi.New().Build(b)
	if err != nil {
		fmt.Println(err)
		return
	}
	for id, ch := range doc.Channels {
		fmt.Printf("%s: %s – %s\n", id, ch.Title, ch.Description)
	}
	// Output:
	// orders_any: Orders – Every order placed, by region.
}
