package asyncapi_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestGolden compares the document of the small service, as JSON and YAML,
// with the reviewed golden files, and validates both.
func TestGolden(t *testing.T) {
	doc, err := serviceGenerator().BuildSources(serviceSources()...)
	if err != nil {
		t.Fatal(err)
	}
	j := validate(t, doc)
	y, err := doc.YAML()
	if err != nil {
		t.Fatal(err)
	}
	validateJSON(t, yamlToJSON(t, y))
	for name, got := range map[string][]byte{"service.json": j, "service.yaml": y} {
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the golden file (run with -update and review the diff): %s", name, firstDiff(got, want))
		}
	}
}

// firstDiff describes the first line where got and want differ.
func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d: got %q, want %q", i+1, gl, wl)
		}
	}
	return "same lines"
}
