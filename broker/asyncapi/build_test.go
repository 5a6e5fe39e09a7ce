package asyncapi_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"

	"github.com/tracebus/tracebus/broker/asyncapi"
	"github.com/tracebus/tracebus/broker/driver"
)

func build(t *testing.T, g *asyncapi.Generator, srcs ...asyncapi.Source) *asyncapi.Document {
	t.Helper()
	doc, err := g.BuildSources(srcs...)
	if err != nil {
		t.Fatal(err)
	}
	validate(t, doc)
	return doc
}

func channel(t *testing.T, doc *asyncapi.Document, id string) *asyncapi.Channel {
	t.Helper()
	return lookup(t, "channel", doc.Channels, id)
}

func operation(t *testing.T, doc *asyncapi.Document, id string) *asyncapi.Operation {
	t.Helper()
	return lookup(t, "operation", doc.Operations, id)
}

func lookup[V any](t *testing.T, what string, m map[string]*V, id string) *V {
	t.Helper()
	v := m[id]
	if v == nil {
		t.Fatalf("no %s %q; have %v", what, id, keys(m))
	}
	return v
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func jsonEq(t *testing.T, what string, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v: %s", what, err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

// TestBuildService checks the mapping rules on the golden service, so that
// they hold even if the golden files are regenerated carelessly.
func TestBuildService(t *testing.T) {
	doc := build(t, serviceGenerator(), serviceSources()...)

	if doc.AsyncAPI != "3.0.0" || doc.Info != (asyncapi.Info{Title: "billing", Version: "1.4.0", Description: "Bills orders and ships them."}) {
		t.Errorf("asyncapi %q, info %+v", doc.AsyncAPI, doc.Info)
	}
	if s := doc.Servers["nats"]; s == nil || *s != (asyncapi.Server{Host: "nats.internal:4222", Protocol: "nats"}) {
		t.Errorf("nats server = %+v", s)
	}
	if s := doc.Servers["kafka"]; s == nil || *s != (asyncapi.Server{Host: "kafka-1.internal:9092", Protocol: "kafka"}) {
		t.Errorf("kafka server = %+v", s)
	}

	orders := channel(t, doc, "orders_any_created")
	if *orders.Address != "orders.{token2}.created" || len(orders.Parameters) != 1 || orders.Parameters["token2"] == nil {
		t.Errorf("orders channel: address %q, parameters %v", *orders.Address, keys(orders.Parameters))
	}
	if len(orders.Messages) != 1 || orders.Messages["Order"] == nil {
		t.Fatalf("orders messages %v: both subscribers share one Order message", keys(orders.Messages))
	}
	jsonEq(t, "Order payload", orders.Messages["Order"].Payload, `{"$ref":"#/components/schemas/Order"}`)
	if orders.Messages["Order"].ContentType != "application/json" {
		t.Errorf("Order content type %q", orders.Messages["Order"].ContentType)
	}

	billing := operation(t, doc, "receive_orders_any_created_billing")
	if billing.Action != "receive" || billing.Channel.Ref != "#/channels/orders_any_created" ||
		billing.Description != "Bills a new order and replies with its invoice." {
		t.Errorf("billing operation %+v", billing)
	}
	if b := billing.Bindings; b == nil || b.NATS == nil || b.NATS.Queue != "billing" || b.Kafka != nil {
		t.Errorf("billing bindings %+v", b)
	}
	if billing.Reply == nil || billing.Reply.Channel.Ref != "#/channels/orders_any_created_reply" ||
		len(billing.Reply.Messages) != 1 || billing.Reply.Messages[0].Ref != "#/channels/orders_any_created_reply/messages/Invoice" {
		t.Fatalf("billing reply %+v", billing.Reply)
	}
	reply := channel(t, doc, "orders_any_created_reply")
	if reply.Address != nil {
		t.Errorf("reply channel address %q, want null (dynamic)", *reply.Address)
	}
	stats := operation(t, doc, "receive_orders_any_created_stats")
	if stats.Reply != nil || !strings.Contains(stats.Summary, "batches") || !strings.Contains(stats.Summary, `"stats"`) {
		t.Errorf("stats operation: reply %+v, summary %q", stats.Reply, stats.Summary)
	}

	audit := channel(t, doc, "audit_rest")
	if *audit.Address != "audit.{rest}" || audit.Messages["bytes"] == nil {
		t.Fatalf("audit channel: address %q, messages %v", *audit.Address, keys(audit.Messages))
	}
	if m := audit.Messages["bytes"]; m.ContentType != "" || !strings.Contains(string(m.Payload), "Unspecified") {
		t.Errorf("byte-level message: content type %q, payload %s", m.ContentType, m.Payload)
	}

	ship := channel(t, doc, "shipments")
	if len(ship.Messages) != 1 || ship.Messages["Shipment"] == nil {
		t.Fatalf("shipments messages %v: subscriber and keyed publisher share one message", keys(ship.Messages))
	}
	kb := ship.Messages["Shipment"].Bindings
	if kb == nil || kb.Kafka == nil {
		t.Fatalf("Shipment has no Kafka binding")
	}
	jsonEq(t, "Shipment key", kb.Kafka.Key, `{"type":"string"}`)
	recv := operation(t, doc, "receive_shipments_billing")
	if b := recv.Bindings; b == nil || b.Kafka == nil {
		t.Fatalf("shipments receive has no Kafka binding")
	}
	jsonEq(t, "groupId", recv.Bindings.Kafka.GroupID, `{"type":"string","enum":["billing"]}`)
	jsonEq(t, "clientId", recv.Bindings.Kafka.ClientID, `{"type":"string","enum":["billing-1"]}`)
	if send := operation(t, doc, "send_shipments"); send.Action != "send" || send.Messages[0].Ref != "#/channels/shipments/messages/Shipment" {
		t.Errorf("send_shipments %+v", send)
	}

	// The same destination on two servers is two channels.
	if a, b := channel(t, doc, "invoices_issued"), channel(t, doc, "kafka_invoices_issued"); a.Servers[0].Ref != "#/servers/nats" || b.Servers[0].Ref != "#/servers/kafka" {
		t.Errorf("invoices channels on servers %v and %v", a.Servers, b.Servers)
	}

	checkRefs(t, doc)

	// Every message documents the propagation headers; typed ones also the
	// content-type header their codec writes.
	for cid, c := range doc.Channels {
		for mid, m := range c.Messages {
			want := `{"$ref":"#/components/schemas/Headers.application_json"}`
			if m.ContentType == "" {
				want = `{"$ref":"#/components/schemas/PropagationHeaders"}`
			}
			jsonEq(t, cid+"/"+mid+" headers", m.Headers, want)
		}
	}
	jsonEq(t, "JSON message headers", doc.Components.Schemas["Headers.application_json"], `{
		"type": "object",
		"allOf": [{"$ref": "#/components/schemas/PropagationHeaders"}],
		"properties": {"content-type": {"type": "string", "const": "application/json",
			"description": "The content type of the body; subscribers decode it with the codec it names."}}}`)
	var headers struct {
		Properties map[string]any `json:"properties"`
	}
	if err := json.Unmarshal(doc.Components.Schemas["PropagationHeaders"], &headers); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"traceparent", "tracestate", "baggage"} {
		if headers.Properties[h] == nil {
			t.Errorf("propagation headers lack %s: %v", h, keys(headers.Properties))
		}
	}
}

// TestChannelAddress covers the wildcard rules: NATS-style systems turn "*"
// and a final ">" into parameters, Kafka topics are taken literally; the
// parameters of a destination template stay parameters everywhere.
func TestChannelAddress(t *testing.T) {
	for _, tc := range []struct {
		system, destination, address string
		params                       []string
	}{
		{"nats", "orders.created", "orders.created", nil},
		{"nats", "a.*.b.>", "a.{token2}.b.{rest}", []string{"rest", "token2"}},
		{"nats", "*.*", "{token1}.{token2}", []string{"token1", "token2"}},
		{"nats", ">", "{rest}", []string{"rest"}},
		{"nats", "a.>.b", "a.>.b", nil}, // ">" only matches as the last token
		{"nats", "a.b*", "a.b*", nil},   // "*" only matches as a whole token
		{"memory", "orders.*", "orders.{token2}", []string{"token2"}},
		{"kafka", "orders.*", "orders.*", nil},
		// Destination templates keep their parameters on every system.
		{"nats", "orders.{region}.created", "orders.{region}.created", []string{"region"}},
		{"memory", "orders.{region}.>", "orders.{region}.{rest}", []string{"region", "rest"}},
		{"kafka", "logs.{level}", "logs.{level}", []string{"level"}},
	} {
		doc := build(t, asyncapi.New(), asyncapi.Source{
			Server:    driver.Info{System: tc.system, ServerAddress: "localhost"},
			Endpoints: []driver.Endpoint{{Kind: driver.EndpointSubscriber, Destination: tc.destination}},
		})
		if len(doc.Channels) != 1 {
			t.Fatalf("%s %q: channels %v", tc.system, tc.destination, keys(doc.Channels))
		}
		for _, c := range doc.Channels {
			got := keys(c.Parameters)
			slices.Sort(got)
			if *c.Address != tc.address || !reflect.DeepEqual(got, tc.params) {
				t.Errorf("%s %q: address %q, parameters %v; want %q, %v", tc.system, tc.destination, *c.Address, got, tc.address, tc.params)
			}
		}
	}
}

func TestBuildErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		system string
		e      driver.Endpoint
		want   error
	}{
		{"empty destination", "nats", driver.Endpoint{Kind: driver.EndpointSubscriber}, asyncapi.ErrInvalidEndpoint},
		{"unknown kind", "nats", driver.Endpoint{Destination: "a"}, asyncapi.ErrInvalidEndpoint},
		{"channel payload", "nats", driver.Endpoint{Kind: driver.EndpointSubscriber, Destination: "a", Payload: typeOf[chan int]()}, asyncapi.ErrUnsupportedType},
		{"func in payload", "nats", driver.Endpoint{Kind: driver.EndpointPublisher, Destination: "a", Payload: typeOf[struct{ F func() }]()}, asyncapi.ErrUnsupportedType},
		{"complex reply", "nats", driver.Endpoint{Kind: driver.EndpointSubscriber, Destination: "a", Reply: typeOf[complex128]()}, asyncapi.ErrUnsupportedType},
		{"func key", "kafka", driver.Endpoint{Kind: driver.EndpointPublisher, Destination: "a", Payload: typeOf[Order](), Key: typeOf[func()]()}, asyncapi.ErrUnsupportedType},
	} {
		info := driver.Info{System: tc.system, ServerAddress: "localhost"}
		_, err := asyncapi.New().BuildSources(asyncapi.Source{Server: info, Endpoints: []driver.Endpoint{tc.e}})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestSchemaNameClash gives two different types of the same name: each gets
// its own component schema and its messages refer to the right one.
func TestSchemaNameClash(t *testing.T) {
	var first, second reflect.Type
	{
		type Item struct {
			A int `json:"a"`
		}
		first = typeOf[Item]()
	}
	{
		type Item struct {
			B string `json:"b"`
		}
		second = typeOf[Item]()
	}
	doc := build(t, asyncapi.New(), asyncapi.Source{
		Server: driver.Info{System: "nats", ServerAddress: "localhost"},
		Endpoints: []driver.Endpoint{
			{Kind: driver.EndpointSubscriber, Destination: "one", Payload: first},
			{Kind: driver.EndpointSubscriber, Destination: "two", Payload: second},
			{Kind: driver.EndpointSubscriber, Destination: "three", Payload: typeOf[[]Order]()},
			{Kind: driver.EndpointSubscriber, Destination: "four", Payload: typeOf[*Order]()},
			{Kind: driver.EndpointSubscriber, Destination: "tree", Payload: typeOf[Tree]()},
		},
	})
	refs := map[string]bool{}
	for _, id := range []string{"one", "two"} {
		for _, m := range channel(t, doc, id).Messages {
			var p struct {
				Ref string `json:"$ref"`
			}
			if err := json.Unmarshal(m.Payload, &p); err != nil {
				t.Fatal(err)
			}
			name, _ := strings.CutPrefix(p.Ref, "#/components/schemas/")
			if doc.Components.Schemas[name] == nil {
				t.Fatalf("channel %s refers to %q, which is not a component", id, p.Ref)
			}
			refs[p.Ref] = true
		}
	}
	if len(refs) != 2 {
		t.Errorf("two types named Item share a schema: %v", refs)
	}
	jsonEq(t, "[]Order payload", channel(t, doc, "three").Messages["payload"].Payload,
		`{"type":"array","items":{"$ref":"#/components/schemas/Order"}}`)
	jsonEq(t, "Tree schema", doc.Components.Schemas["Tree"], `{"type":"object","additionalProperties":false,"required":["children"],
		"properties":{"children":{"type":"array","items":{"$ref":"#/components/schemas/Tree"}},"parent":{"$ref":"#/components/schemas/Tree"}}}`)
	jsonEq(t, "*Order payload", channel(t, doc, "four").Messages["Order"].Payload, `{"$ref":"#/components/schemas/Order"}`)
}

// Tree is recursive: its schema refers to itself.
type Tree struct {
	Children []Tree `json:"children"`
	Parent   *Tree  `json:"parent,omitempty"`
}

func TestPropagator(t *testing.T) {
	src := asyncapi.Source{
		Server:    driver.Info{System: "nats", ServerAddress: "localhost"},
		Endpoints: []driver.Endpoint{{Kind: driver.EndpointSubscriber, Destination: "a"}},
	}
	doc := build(t, asyncapi.New(asyncapi.WithPropagators(propagation.TraceContext{})), src)
	var headers struct {
		Properties map[string]any `json:"properties"`
	}
	if err := json.Unmarshal(doc.Components.Schemas["PropagationHeaders"], &headers); err != nil {
		t.Fatal(err)
	}
	if got := keys(headers.Properties); len(got) != 2 || headers.Properties["baggage"] != nil {
		t.Errorf("trace context propagator: headers %v, want traceparent and tracestate", got)
	}

	doc = build(t, asyncapi.New(asyncapi.WithPropagators(nil)), src)
	if doc.Components != nil || channel(t, doc, "a").Messages["bytes"].Headers != nil {
		t.Errorf("without a propagator the document still lists headers")
	}
}

// TestHostileNames feeds destinations, groups and server facts that are
// awkward for identifiers, references and bindings: the document stays
// valid and every reference resolves.
func TestHostileNames(t *testing.T) {
	long := strings.Repeat("q", 300)
	srcs := []asyncapi.Source{
		{Server: driver.Info{System: "nats"}, Endpoints: []driver.Endpoint{
			{Kind: driver.EndpointSubscriber, Destination: "a/b~c.{x}.*", Group: "g/1~"},
			{Kind: driver.EndpointSubscriber, Destination: "a_b~c.{x}.*", Group: long},
			{Kind: driver.EndpointSubscriber, Destination: "заказы.*"},
			{Kind: driver.EndpointSubscriber, Destination: "a/b~c.{x}.*", Group: "g/1~"},
			{Kind: driver.EndpointSubscriber, Destination: " ", Reply: typeOf[map[string]any]()},
		}},
		{Server: driver.Info{System: "nats", ServerAddress: "other", ServerPort: 4223}, Endpoints: []driver.Endpoint{
			{Kind: driver.EndpointSubscriber, Destination: "a/b~c.{x}.*"},
		}},
		{Server: driver.Info{System: "", ServerAddress: "::1", ServerPort: 1}, Endpoints: []driver.Endpoint{
			{Kind: driver.EndpointPublisher, Destination: "x"},
		}},
	}
	doc := build(t, asyncapi.New(asyncapi.WithInfo(asyncapi.Info{})), srcs...)
	if doc.Info.Title != "tracebus application" || doc.Info.Version != "0.0.0" {
		t.Errorf("an empty info: %+v, want the default title and version AsyncAPI requires", doc.Info)
	}
	if len(doc.Operations) != 7 {
		t.Errorf("operations %v, want 7", keys(doc.Operations))
	}
	if o := operation(t, doc, "receive_a_b_c__x__any_2_"+strings.Repeat("q", 300)); o.Bindings != nil || !strings.Contains(o.Summary, long) {
		t.Errorf("over-long NATS queue: bindings %+v, summary %q", o.Bindings, o.Summary)
	}
	if s := doc.Servers["unknown"]; s == nil || s.Host != "[::1]:1" {
		t.Errorf("servers %v", doc.Servers)
	}
	checkRefs(t, doc)
}

// checkRefs fails t unless every reference of doc resolves.
func checkRefs(t *testing.T, doc *asyncapi.Document) {
	t.Helper()
	j, err := doc.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var root any
	if err := json.Unmarshal(j, &root); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if resolve(root, ref) == nil {
					t.Errorf("reference %q does not resolve", ref)
				}
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(root)
}

func resolve(root any, ref string) any {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	cur := root
	for _, tok := range strings.Split(p, "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[tok]
	}
	return cur
}

// TestCodecPayloads covers payloads whose body is not JSON: raw bytes are
// bytes (not JSON's base64 string), text is a string, and a struct sent
// with another codec says how its body is encoded.
func TestCodecPayloads(t *testing.T) {
	doc := build(t, asyncapi.New(), asyncapi.Source{
		Server: driver.Info{System: "nats", ServerAddress: "localhost"},
		Endpoints: []driver.Endpoint{
			{Kind: driver.EndpointSubscriber, Destination: "raw", Payload: typeOf[[]byte](), ContentType: "application/octet-stream"},
			{Kind: driver.EndpointSubscriber, Destination: "text", Payload: typeOf[string](), ContentType: "text/plain; charset=utf-8"},
			{Kind: driver.EndpointSubscriber, Destination: "proto", Payload: typeOf[*Invoice](), ContentType: "application/protobuf"},
			{Kind: driver.EndpointSubscriber, Destination: "json", Payload: typeOf[[]byte](), ContentType: "application/cloudevents+json"},
		},
	})
	raw := channel(t, doc, "raw").Messages["payload"]
	jsonEq(t, "raw payload", raw.Payload, `{"type":"string","format":"binary","description":"The raw bytes of the body."}`)
	if raw.ContentType != "application/octet-stream" || raw.Description != "" {
		t.Errorf("raw message %+v", raw)
	}
	jsonEq(t, "text payload", channel(t, doc, "text").Messages["payload"].Payload, `{"type":"string"}`)
	proto := channel(t, doc, "proto").Messages["Invoice"]
	jsonEq(t, "proto payload", proto.Payload, `{"$ref":"#/components/schemas/Invoice"}`)
	if !strings.Contains(proto.Description, "application/protobuf, not as JSON") {
		t.Errorf("proto message description %q", proto.Description)
	}
	jsonEq(t, "JSON bytes payload", channel(t, doc, "json").Messages["payload"].Payload, `{"type":"string","contentEncoding":"base64"}`)
}

// TestReplyOnKafka: Kafka records carry the requester's reply topic in a
// header, so a Kafka subscriber's result type is a reply like on NATS.
func TestReplyOnKafka(t *testing.T) {
	doc := build(t, asyncapi.New(), asyncapi.Source{
		Server: driver.Info{System: "kafka", ServerAddress: "localhost", ServerPort: 9092},
		Endpoints: []driver.Endpoint{{Kind: driver.EndpointSubscriber, Destination: "orders", Group: "billing",
			Payload: typeOf[Order](), ContentType: "application/json", Reply: typeOf[Invoice](), ReplyContentType: "application/json"}},
	})
	if o := operation(t, doc, "receive_orders_billing"); o.Reply == nil {
		t.Errorf("no reply; channels %v", keys(doc.Channels))
	}
}
