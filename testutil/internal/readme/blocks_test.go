package readme_test

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// readmePath is the README whose Go blocks must compile as printed.
const readmePath = "../../../README.md"

// block is one ```go block of the README.
type block struct {
	line int    // README line of the block's first line of code
	code string // the code as printed
}

// readmeBlocks returns the ```go blocks of the README in order.
func readmeBlocks(t *testing.T) []block {
	t.Helper()
	f, err := os.Open(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		blocks []block
		cur    *block
		code   strings.Builder
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```go":
			cur = &block{line: n + 1}
			code.Reset()
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.code = code.String()
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			code.WriteString(line + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("README.md:%d: a go block is not closed", cur.line-1)
	}
	return blocks
}

// wrapper says how a README block becomes compilable Go: the package it
// joins (blocks of one package compile together, as the service, its main
// and its test do), the imports it needs, and, for blocks of statements,
// the function they become the body of: its parameters stand for what
// the surrounding prose assumes (a transport, a broker, a ctx). Nothing
// else is added, so a block that does not compile as printed fails here.
type wrapper struct {
	pkg     string // directory and package name
	test    bool   // a _test.go file
	imports []string
	// For a block of statements: the parameters and result of the
	// function around it, and statements after it that use what the
	// block declares but the prose leaves unused.
	params, results, after string
	decls                  string // package-level declarations the block refers to
}

// wrappers are keyed by a block's first line. A block without one fails
// the test, so every new block gets a wrapper.
var wrappers = map[string]wrapper{
	"type Order struct {": {pkg: "main", imports: []string{"context", "errors", "github.com/tracebus/tracebus/broker"}},
	"func main() {": {pkg: "main", imports: []string{
		"context", "log/slog", "os",
		"github.com/tracebus/tracebus/broker", "github.com/tracebus/tracebus/broker/kafkabroker",
		"github.com/tracebus/tracebus/broker/natsbroker", "github.com/tracebus/tracebus/exporters",
		"github.com/tracebus/tracebus/middleware",
	}},
	"func TestBilling(t *testing.T) {": {pkg: "main", test: true, imports: []string{
		"testing", "github.com/tracebus/tracebus/broker", "github.com/tracebus/tracebus/testutil",
	}},
	"func TestBillingOnNATS(t *testing.T) {": {pkg: "main", test: true, imports: []string{
		"testing", "github.com/tracebus/tracebus/broker", "github.com/tracebus/tracebus/testutil",
	}},
	"tr, err := memory.New() // or natsbroker.New(nc), natsbroker.Connect(url), kafkabroker.New(kafkabroker.WithSeedBrokers(addr))": {
		pkg: "bytelevel", imports: []string{"context", "log", "github.com/tracebus/tracebus/broker", "github.com/tracebus/tracebus/broker/memory"},
		params: "ctx context.Context",
	},
	`broker.HandleResult(b, "invoices.quote", Quote, broker.Group("billing")) // func(ctx, Order) (Invoice, error)`: {
		pkg: "request", imports: []string{"context", "time", "github.com/tracebus/tracebus/broker"},
		params: "ctx context.Context, b *broker.Broker, order Order", after: "_, _ = inv, err",
		decls: `type Order struct{ ID string }
type Invoice struct{ Amount float64 }
func Quote(context.Context, Order) (Invoice, error) { return Invoice{}, nil }`,
	},
	`jobs, err := broker.NewPuller[Job](b, "jobs", broker.Group("workers"))`: {
		pkg: "pull", imports: []string{"context", "github.com/tracebus/tracebus/broker"},
		params: "ctx context.Context, b *broker.Broker", results: "error", after: "return err",
		decls: `type Job struct{ ID string }
func run(context.Context, Job) error { return nil }`,
	},
	"app := broker.NewApp(": {
		pkg: "app", imports: []string{"context", "net/http", "time", "github.com/tracebus/tracebus/broker"},
		params:  "orders, invoicing *broker.Broker, openDB, closeDB func(context.Context) error, providers interface{ Shutdown(context.Context) error }",
		results: "error", after: "return err",
	},
	"tel := middleware.NewTelemetry() // global providers and propagator; options to pass your own": {
		pkg: "telemetry", imports: []string{"github.com/tracebus/tracebus/broker", "github.com/tracebus/tracebus/broker/driver", "github.com/tracebus/tracebus/middleware"},
		params: "transport driver.Transport", after: "_ = b",
	},
	`p, err := exporters.Setup(ctx, exporters.WithService("billing", "1.4.0"))`: {
		pkg: "exporting", imports: []string{"context", "log/slog", "time", "github.com/tracebus/tracebus/exporters"},
		params: "ctx context.Context", results: "error", after: "return nil",
	},
	"logger := slog.New(slog.NewMultiHandler(": {
		pkg: "logs", imports: []string{"context", "log/slog", "os", "github.com/tracebus/tracebus/broker", "github.com/tracebus/tracebus/broker/driver", "github.com/tracebus/tracebus/exporters", "github.com/tracebus/tracebus/middleware"},
		params: "p *exporters.Providers, transport driver.Transport",
	},
	`docs := asyncapi.New(asyncapi.WithInfo(asyncapi.Info{Title: "billing", Version: "1.4.0"}))`: {
		pkg: "asyncapidoc", imports: []string{"net/http", "github.com/tracebus/tracebus/broker", "github.com/tracebus/tracebus/broker/asyncapi"},
		params: "natsBroker, kafkaBroker *broker.Broker",
	},
}

// Every Go block of the README compiles as printed (and passes go vet),
// each wrapped only in its package clause, its imports and, for
// statements, a function; errors point at the README's own lines.
func TestREADMEGoBlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the README's blocks with the go command")
	}
	blocks := readmeBlocks(t)
	if len(blocks) == 0 {
		t.Fatal("no go blocks in the README")
	}
	readme, err := filepath.Abs(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	// Inside the module, so the blocks import this repository's packages
	// as they are; "_" keeps the go command's ./... patterns away from it.
	dir, err := os.MkdirTemp(".", "_readme_blocks")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })

	pkgs := map[string]bool{}
	for i, b := range blocks {
		first, _, _ := strings.Cut(b.code, "\n")
		w, ok := wrappers[strings.TrimSpace(first)]
		if !ok {
			t.Errorf("README.md:%d: a go block without a wrapper in blocks_test.go (first line %q)", b.line, first)
			continue
		}
		var src strings.Builder
		fmt.Fprintf(&src, "package %s\n\nimport (\n", w.pkg)
		for _, imp := range w.imports {
			fmt.Fprintf(&src, "\t%q\n", imp)
		}
		src.WriteString(")\n\n" + w.decls + "\n\n")
		body := w.params != "" || w.results != ""
		if body {
			fmt.Fprintf(&src, "func block%d(%s) %s {\n", i, w.params, w.results)
		}
		// Compiler and vet messages name the README's lines.
		fmt.Fprintf(&src, "//line %s:%d\n%s", readme, b.line, b.code)
		if body {
			fmt.Fprintf(&src, "\n//line blocks_test.go:1\n%s\n}\n", w.after)
		}
		name := fmt.Sprintf("block%02d.go", i)
		if w.test {
			name = fmt.Sprintf("block%02d_test.go", i)
		}
		if err := os.MkdirAll(filepath.Join(dir, w.pkg), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, w.pkg, name), []byte(src.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		pkgs["./"+filepath.Join(dir, w.pkg)] = true
	}
	args := append([]string{"vet"}, slices.Sorted(maps.Keys(pkgs))...)
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("README go blocks do not compile as printed (go %s): %v\n%s", strings.Join(args, " "), err, out)
	}
}

// The service and its test at the top of this package are the README's
// blocks, character for character: TestBilling and TestBillingOnNATS run
// what the README shows.
func TestREADMECopyInSync(t *testing.T) {
	src, err := os.ReadFile("readme_test.go")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, b := range readmeBlocks(t) {
		first, _, _ := strings.Cut(b.code, "\n")
		if first != "type Order struct {" && first != "func TestBilling(t *testing.T) {" && first != "func TestBillingOnNATS(t *testing.T) {" {
			continue
		}
		found++
		if !strings.Contains(string(src), b.code) {
			t.Errorf("README.md:%d: the block differs from its copy in readme_test.go:\n%s", b.line, b.code)
		}
	}
	if found != 3 {
		t.Errorf("found %d of the service's three blocks in the README", found)
	}
}
