package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
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
