package asyncapi_test

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/asyncapi"
	"github.com/tracebus/tracebus/testutil"
)

func get(t *testing.T, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// TestHandler serves the service's document under a prefix, as an
// application would, and checks the JSON, the YAML and the HTML page.
func TestHandler(t *testing.T) {
	doc, err := serviceGenerator().BuildSources(serviceSources()...)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/asyncapi/", http.StripPrefix("/asyncapi", asyncapi.NewHandler(doc)))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, body := get(t, http.MethodGet, srv.URL+"/asyncapi/asyncapi.json")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("JSON: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	validateJSON(t, []byte(body))

	for _, name := range []string{"asyncapi.yaml", "asyncapi.yml"} {
		resp, body = get(t, http.MethodGet, srv.URL+"/asyncapi/"+name)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/yaml" {
			t.Fatalf("%s: %s, Content-Type %q", name, resp.Status, resp.Header.Get("Content-Type"))
		}
		validateJSON(t, yamlToJSON(t, []byte(body)))
	}

	for _, path := range []string{"/asyncapi/", "/asyncapi/index.html"} {
		resp, body = get(t, http.MethodGet, srv.URL+path)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Fatalf("%s: %s, Content-Type %q", path, resp.Status, resp.Header.Get("Content-Type"))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'none'") {
			t.Errorf("%s: Content-Security-Policy %q", path, csp)
		}
	}
	page := html.UnescapeString(body)
	for _, external := range []string{"<script", "<link", "<img", "src=", "@import", "url("} {
		if strings.Contains(page, external) {
			t.Errorf("the page loads something: it contains %q", external)
		}
	}
	var want []string
	for id, c := range doc.Channels {
		want = append(want, id)
		if c.Address != nil {
			want = append(want, *c.Address)
		}
		for mid := range c.Messages {
			want = append(want, "Message <code>"+mid+"</code>")
		}
	}
	for id := range doc.Operations {
		want = append(want, id)
	}
	want = append(want, `"order_id"`, `"quantity"`, `"minimum": 1`, "traceparent", "nats.internal:4222",
		`href="asyncapi.json"`, `<a href="#schema-Order">`, `id="schema-Order"`, `href="asyncapi.yaml"`, "Bills a new order and replies with its invoice.", "<strong>Bill new orders</strong>")
	for _, w := range want {
		if !strings.Contains(page, w) {
			t.Errorf("the page does not show %q", w)
		}
	}

	if resp, _ := get(t, http.MethodHead, srv.URL+"/asyncapi/asyncapi.json"); resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD: %s", resp.Status)
	}
	if resp, _ := get(t, http.MethodPost, srv.URL+"/asyncapi/asyncapi.json"); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %s, Allow %q", resp.Status, resp.Header.Get("Allow"))
	}
	if resp, _ := get(t, http.MethodGet, srv.URL+"/asyncapi/asyncapi.xml"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown file: %s", resp.Status)
	}
}

// TestGeneratorHandler serves the document of a live broker: a subscription
// made after the handler was created shows in the next response, and a
// build error is answered with 500.
func TestGeneratorHandler(t *testing.T) {
	b := broker.New(testutil.Memory(t))
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	h := asyncapi.New(asyncapi.WithInfo(asyncapi.Info{Title: "live"})).Handler(b)

	serve := func() (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/asyncapi.json", nil))
		return rec.Code, rec.Body.String()
	}
	code, body := serve()
	if code != http.StatusOK || strings.Contains(body, "receive_") {
		t.Fatalf("before subscribing: %d\n%s", code, body)
	}
	validateJSON(t, []byte(body))

	if err := b.Subscribe("orders.*", func(context.Context, *broker.Message) error { return nil }, broker.Group("billing")); err != nil {
		t.Fatal(err)
	}
	code, body = serve()
	if code != http.StatusOK || !strings.Contains(body, `"receive_orders_any_billing"`) || !strings.Contains(body, `"orders.{token2}"`) {
		t.Fatalf("after subscribing: %d\n%s", code, body)
	}
	validateJSON(t, []byte(body))

}

// TestHandlerError serves a document that cannot be encoded: the handler
// answers 500 with the reason instead of a truncated document.
func TestHandlerError(t *testing.T) {
	doc := &asyncapi.Document{AsyncAPI: asyncapi.Version, Components: &asyncapi.Components{
		Schemas: map[string]json.RawMessage{"Broken": json.RawMessage(`{"type":`)},
	}}
	for _, path := range []string{"/asyncapi.json", "/asyncapi.yaml", "/"} {
		rec := httptest.NewRecorder()
		asyncapi.NewHandler(doc).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if path == "/" {
			// The page shows schemas as they are; it needs no encoding.
			if rec.Code != http.StatusOK {
				t.Errorf("%s: %d %s", path, rec.Code, rec.Body.String())
			}
			continue
		}
		if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "asyncapi: encode JSON") {
			t.Errorf("%s: %d %s", path, rec.Code, rec.Body.String())
		}
	}
}
