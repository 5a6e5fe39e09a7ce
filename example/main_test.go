package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tracebus/tracebus/testutil/otlptest"
)

// TestRun runs the whole example on embedded servers and checks what a
// reader sees: every order shipped, one trace per order across checkout and
// billing (the flaky order with its failed attempt), and the shipping batch
// span linked to the invoices.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	const orders = 3
	if err := run(t.Context(), config{orders: orders, timeout: 30 * time.Second}, &lockedWriter{w: &out}); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{
		"all 3 orders shipped",
		"✗ payment provider timeout",
		"POST /checkout",
		"└─ send orders.created.eu       checkout  producer",
		"process orders.created.*  billing   consumer",
		"send invoices          billing   producer",
		"process invoices  shipping  consumer",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if n := strings.Count(text, "send invoices"); n != orders {
		t.Errorf("%d send invoices spans, want %d:\n%s", n, orders, text)
	}
	if n := strings.Count(text, "process orders.created.*"); n != orders+1 {
		t.Errorf("%d billing process spans, want %d (one retry):\n%s", n, orders+1, text)
	}
	if n := strings.Count(text, "· 2 services"); n != orders {
		t.Errorf("%d traces spanning checkout and billing, want %d:\n%s", n, orders, text)
	}
}

// TestRunOTLP runs the example against an OTLP receiver that, like Jaeger,
// takes traces and answers 404 for metrics: with -otlp the run succeeds
// with one warning and the traces arrive; with only
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
			if !strings.Contains(out.String(), "process orders.created.*  billing   consumer") {
				t.Errorf("the waterfall did not print:\n%s", out.String())
			}
			for _, name := range []string{"send orders.created.eu", "process orders.created.*", "send invoices", "process invoices"} {
				if _, ok := rcv.Span(name); !ok {
					t.Errorf("span %q did not reach the receiver", name)
				}
			}
			if strings.Count(warnings.String(), "level=") != 1 || !strings.Contains(warnings.String(), "level=WARN") ||
				!strings.Contains(warnings.String(), "does not accept metrics") {
				t.Errorf("want one warning, about metrics, got:\n%s", warnings.String())
			}
		})
	}
}
