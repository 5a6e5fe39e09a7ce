package asyncapi_test

import (
	"reflect"
	"time"

	"github.com/tracebus/tracebus/broker/asyncapi"
	"github.com/tracebus/tracebus/broker/driver"
)

// Order is the payload of the small service the golden files describe.
type Order struct {
	// ID identifies the order.
	ID       string            `json:"id"`
	Customer Customer          `json:"customer"`
	Lines    []Line            `json:"lines"`
	Placed   time.Time         `json:"placed"`
	Meta     map[string]any    `json:"meta,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	Note     *string           `json:"note,omitempty"`
}

// Customer is nested in Order.
type Customer struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// Line is an order line.
type Line struct {
	SKU      string  `json:"sku"`
	Quantity int     `json:"quantity" jsonschema:"minimum=1"`
	Price    float64 `json:"price"`
}

// Invoice is what billing replies and publishes.
type Invoice struct {
	OrderID string  `json:"order_id"`
	Total   float64 `json:"total"`
	Paid    bool    `json:"paid"`
}

// Shipment is published to Kafka, keyed by order id.
type Shipment struct {
	OrderID string   `json:"order_id"`
	Carrier string   `json:"carrier"`
	Parcels []string `json:"parcels"`
}

// OrderID is the Kafka key of shipments.
type OrderID string

func typeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }

// serviceSources is a small service over NATS and Kafka, with every kind of
// endpoint the generator documents: typed and byte-level subscribers,
// wildcards, groups, a durable batch subscriber, request/reply from both
// sides (a replier, and a requester whose replier is another service),
// typed publishers with a Kafka key, operations and a channel with a title
// and description,
// and undocumented endpoints that stay out.
func serviceSources() []asyncapi.Source {
	natsInfo := driver.Info{System: "nats", ServerAddress: "nats.internal", ServerPort: 4222, ClientID: "billing"}
	kafkaInfo := driver.Info{System: "kafka", ServerAddress: "kafka-1.internal", ServerPort: 9092, ClientID: "billing-1"}
	const js = "application/json"
	return []asyncapi.Source{
		{Server: natsInfo, Endpoints: []driver.Endpoint{
			{Kind: driver.EndpointSubscriber, Destination: "orders.*.created", Group: "billing",
				Payload: typeOf[Order](), ContentType: js, Reply: typeOf[Invoice](), ReplyContentType: js,
				Title:        "Bill new orders",
				Description:  "Bills a new order and replies with its invoice.",
				ChannelTitle: "New orders", ChannelDescription: "Every order placed, by region."},
			{Kind: driver.EndpointSubscriber, Destination: "debug.>", Description: "A debugging tap.", Undocumented: true},
			{Kind: driver.EndpointSubscriber, Destination: "audit.>", Description: "Archives every audit event as it is."},
			{Kind: driver.EndpointSubscriber, Destination: "orders.*.created", Group: "stats", Name: "stats", Batch: true,
				Payload: typeOf[Order](), ContentType: js, ChannelTitle: "Ignored: the channel has its title"},
			{Kind: driver.EndpointPublisher, Destination: "audit.billing", Payload: typeOf[Invoice](), ContentType: js, Undocumented: true},
			{Kind: driver.EndpointPublisher, Destination: "invoices.issued", Payload: typeOf[Invoice](), ContentType: js},
			{Kind: driver.EndpointPublisher, Destination: "orders.quote", Payload: typeOf[Order](), ContentType: js,
				Reply: typeOf[Invoice](), ReplyContentType: js,
				Title: "Ask for a quote", Description: "Asks the pricing service for a quote."},
		}},
		{Server: kafkaInfo, Endpoints: []driver.Endpoint{
			{Kind: driver.EndpointSubscriber, Destination: "shipments", Group: "billing",
				Payload: typeOf[Shipment](), ContentType: js},
			{Kind: driver.EndpointPublisher, Destination: "shipments", Payload: typeOf[Shipment](), ContentType: js,
				Key: typeOf[OrderID]()},
			{Kind: driver.EndpointPublisher, Destination: "invoices.issued", Payload: typeOf[Invoice](), ContentType: js, Batch: true},
		}},
	}
}

func serviceGenerator() *asyncapi.Generator {
	return asyncapi.New(
		asyncapi.WithInfo(asyncapi.Info{
			Title:       "billing",
			Version:     "1.4.0",
			Description: "Bills orders and ships them.",
		}),
	)
}
