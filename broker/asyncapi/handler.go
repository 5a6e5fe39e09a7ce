package asyncapi

import (
	"net/http"
	"strings"

	"github.com/tracebus/tracebus/broker"
)

// NewHandler returns an http.Handler that serves doc:
//
//   - "asyncapi.json": the document as JSON (application/json)
//   - "asyncapi.yaml" (or ".yml"): the document as YAML (application/yaml)
//   - "" or "index.html": an HTML page listing the servers, channels,
//     operations and payload schemas, with links to both files
//
// Paths are relative to where the handler is mounted: mount it on a path
// that ends with "/", stripping the prefix, so that the page's relative
// links work:
//
//	http.Handle("/asyncapi/", http.StripPrefix("/asyncapi", asyncapi.NewHandler(doc)))
//
// The page is self-contained and its Content-Security-Policy forbids loading
// anything. Only GET and HEAD are allowed. doc is encoded on each request;
// do not change it while the handler serves it.
func NewHandler(doc *Document) http.Handler {
	return &handler{build: func() (*Document, error) { return doc, nil }}
}

// Handler returns an http.Handler like NewHandler's that builds the document
// of brokers on each request, so that it also lists the subscriptions and
// publishers registered after the handler was made. A build error is
// answered with status 500.
func (g *Generator) Handler(brokers ...*broker.Broker) http.Handler {
	return &handler{build: func() (*Document, error) { return g.Build(brokers...) }}
}

type handler struct {
	build func() (*Document, error)
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var (
		render      func(*Document) ([]byte, error)
		contentType string
	)
	switch strings.TrimPrefix(r.URL.Path, "/") {
	case "asyncapi.json":
		render, contentType = (*Document).JSON, "application/json"
	case "asyncapi.yaml", "asyncapi.yml":
		render, contentType = (*Document).YAML, "application/yaml"
	case "", "index.html":
		render, contentType = renderHTML, "text/html; charset=utf-8"
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	doc, err := h.build()
	var body []byte
	if err == nil {
		body, err = render(doc)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}
