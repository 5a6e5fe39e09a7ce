package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tracebus/tracebus/testutil/otlptest"
)

// TestRun runs the whole example on embedded servers and checks what a
// reader sees and what the HTTP endpoints serve while it runs: every valid
// order shipped and the invalid one dead-lettered, one trace per order
// across checkout, billing and fraud (the flaky order with its failed
// attempt), the shipping batch span linked to the invoices, log lines with
// trace ids, the custom counter in the Prometheus output, and an AsyncAPI
// document listing every channel.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	const orders = 4
	served := map[string]string{}
	cfg := config{orders: orders, timeout: 30 * time.Second, http: "127.0.0.1:0", inspect: func(base string) error {
		for _, path := range []string{"/metrics/billing", "/metrics/shipping", "/asyncapi/asyncapi.json", "/asyncapi/", "/readyz", "/livez"} {
			resp, err := http.Get(base + path)
			if err != nil {
				return err
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
			}
			served[path] = string(body)
		}
		return nil
	}}
	if err := run(t.Context(), cfg, &lockedWriter{w: &out}); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{
		"4 orders: 3 shipped, 1 dead-lettered",
		`billing_invoices_total{customer_tier="standard"`,
		"✗ payment provider timeout",
		"✗ tracebus: invalid main.Order: quantity 0",
		"POST /checkout",
		"└─ send orders.created.eu",
		"process orders.created.*",
		"request fraud.check",
		"process fraud.check",
		"charge card",
		"send invoices",
		"send orders.dead",
		"process invoices",
		"msg=\"billing issued invoice\"",
		"msg=\"shipping batch\"",
		"trace_id=",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if n := strings.Count(text, "─ send invoices"); n != orders-1 {
		t.Errorf("%d send invoices spans, want %d:\n%s", n, orders-1, text)
	}
	if n := strings.Count(text, "─ process orders.created.*"); n != orders+1 {
		t.Errorf("%d billing process spans, want %d (one retry):\n%s", n, orders+1, text)
	}
	if n := strings.Count(text, "· 3 services"); n != orders-1 {
		t.Errorf("%d traces spanning checkout, billing and fraud, want %d:\n%s", n, orders-1, text)
	}
	for _, want := range []string{"messaging_process_duration_seconds", "billing_invoices_total"} {
		if !strings.Contains(served["/metrics/billing"], want) {
			t.Errorf("/metrics/billing lacks %s", want)
		}
	}
	var doc struct {
		AsyncAPI string `json:"asyncapi"`
		Channels map[string]struct {
			Address *string `json:"address"`
		} `json:"channels"`
	}
	if err := json.Unmarshal([]byte(served["/asyncapi/asyncapi.json"]), &doc); err != nil {
		t.Fatal(err)
	}
	addrs := map[string]bool{}
	for _, c := range doc.Channels {
		if c.Address != nil {
			addrs[*c.Address] = true
		}
	}
	for _, want := range []string{ordersSubject, fraudSubject, invoicesTopic, deadOrders} {
		found := addrs[want]
		if want == ordersSubject { // the pattern orders.created.* is a channel with a parameter
			for a := range addrs {
				found = found || strings.HasPrefix(a, "orders.created.{")
			}
		}
		if !found {
			t.Errorf("the AsyncAPI document has no channel for %s: %v", want, addrs)
		}
	}
	validateAsyncAPI(t, served["/asyncapi/asyncapi.json"])
	if doc.AsyncAPI != "3.0.0" || !strings.Contains(served["/asyncapi/"], "<html") {
		t.Errorf("asyncapi %q; html page served: %v", doc.AsyncAPI, strings.Contains(served["/asyncapi/"], "<html"))
	}
}

// TestRunOTLP runs the example against an OTLP receiver that, like Jaeger,
// takes traces and answers 404 for metrics and logs: with -otlp the run
// succeeds with one warning and the traces arrive; with only
// OTEL_EXPORTER_OTLP_ENDPOINT set the traces arrive and the waterfall still
// prints.
func TestRunOTLP(t *testing.T) {
	for _, tc := range []struct {
		name string
		flag bool
	}{{"flag", true}, {"environment", false}} {
		t.Run(tc.name, func(t *testing.T) {
			rcv := otlptest.StartHTTP(t, otlptest.Refuse(otlptest.Metrics, otlptest.Logs))
			cfg := config{orders: 1, timeout: 30 * time.Second}
			if tc.flag {
				cfg.otlp = rcv.URL
			} else {
				t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
			}
			var out, warnings bytes.Buffer
			cfg.log = slog.New(slog.NewTextHandler(&lockedWriter{w: &warnings}, nil))
			if err := run(t.Context(), cfg, &lockedWriter{w: &out}); err != nil {
				t.Fatalf("run: %v\n%s", err, warnings.String())
			}
			if !regexp.MustCompile(`process orders\.created\.\* +billing +consumer`).MatchString(out.String()) {
				t.Errorf("the waterfall did not print:\n%s", out.String())
			}
			for _, name := range []string{"send orders.created.eu", "process orders.created.*", "request fraud.check", "send invoices", "process invoices"} {
				if _, ok := rcv.Span(name); !ok {
					t.Errorf("span %q did not reach the receiver", name)
				}
			}
			// The flag sends traces, metrics and logs: metrics and logs
			// are refused. The environment sends traces and logs (metrics
			// go to the example's Prometheus endpoint): logs are refused.
			refused := []string{"does not accept logs"}
			if tc.flag {
				refused = append(refused, "does not accept metrics")
			}
			got := warnings.String()
			ok := strings.Count(got, "level=") == len(refused) && strings.Count(got, "level=WARN") == len(refused)
			for _, r := range refused {
				ok = ok && strings.Count(got, r) == 1
			}
			if !ok {
				t.Errorf("want one warning for each of %q, got:\n%s", refused, got)
			}
		})
	}
}

// validateAsyncAPI checks doc against the official AsyncAPI 3.0.0 JSON
// Schema that broker/asyncapi vendors for its own tests.
func validateAsyncAPI(t *testing.T, doc string) {
	t.Helper()
	f, err := os.Open("../broker/asyncapi/testdata/asyncapi-3.0.0.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	schemaDoc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("asyncapi-3.0.0.json", schemaDoc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile("asyncapi-3.0.0.json")
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.Validate(inst); err != nil {
		t.Errorf("the served document is not valid AsyncAPI 3.0.0: %v", err)
	}
}

// With -otlp at an endpoint nobody listens on, the run fails with one
// line that names the endpoint, the services and the cause, with a hint;
// the waterfall still printed every trace.
func TestRunOTLPUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	var out, warnings bytes.Buffer
	cfg := config{orders: 1, timeout: 30 * time.Second, otlp: endpoint,
		log: slog.New(slog.NewTextHandler(&lockedWriter{w: &warnings}, nil))}
	err = run(t.Context(), cfg, &lockedWriter{w: &out})
	if err == nil {
		t.Fatal("run succeeded with nothing listening at the OTLP endpoint")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("the error has more than one line:\n%s", msg)
	}
	for _, want := range []string{"telemetry of billing, checkout, fraud, shipping not exported to " + endpoint, "connection refused", "listening there?", "-otlp"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("error %q does not wrap the connection error", msg)
	}
	if !strings.Contains(out.String(), "process orders.created.*") {
		t.Errorf("the waterfall did not print:\n%s", out.String())
	}
}

// With -serve, the run serves until ctx is done and then ends without a
// "traces:" heading: the traces printed while it served.
func TestRunServe(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out bytes.Buffer
	cfg := config{orders: 1, timeout: 30 * time.Second, serve: true,
		inspect: func(string) error { cancel(); return nil }} // Ctrl-C once the orders are through
	if err := run(ctx, cfg, &lockedWriter{w: &out}); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	text := out.String()
	if !strings.Contains(text, "serving until Ctrl-C") || strings.Contains(text, "traces:") {
		t.Errorf("want the serving line and no traces heading:\n%s", text)
	}
	if !strings.Contains(text, "process orders.created.*") {
		t.Errorf("the traces were not printed:\n%s", text)
	}
}

// Every flag has its help text, and the README documents every flag.
func TestFlagsDocumented(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var cfg config
	commandLine(&cfg).VisitAll(func(f *flag.Flag) {
		if len(f.Usage) < 20 {
			t.Errorf("-%s: help %q says too little", f.Name, f.Usage)
		}
		if !bytes.Contains(readme, []byte("`-"+f.Name)) {
			t.Errorf("the README does not document -%s", f.Name)
		}
	})
	if cfg.timeout != 60*time.Second {
		t.Errorf("-timeout defaults to %v", cfg.timeout)
	}
}
