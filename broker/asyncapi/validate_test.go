package asyncapi_test

import (
	"bytes"
	"os"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tracebus/tracebus/broker/asyncapi"
)

// officialSchema is the AsyncAPI 3.0.0 JSON Schema vendored in testdata,
// compiled once per test binary.
var officialSchema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	f, err := os.Open("testdata/asyncapi-3.0.0.json")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("asyncapi-3.0.0.json", doc); err != nil {
		return nil, err
	}
	return c.Compile("asyncapi-3.0.0.json")
})

// validateJSON fails t unless j is a valid AsyncAPI 3.0.0 document.
func validateJSON(t *testing.T, j []byte) {
	t.Helper()
	sch, err := officialSchema()
	if err != nil {
		t.Fatalf("compile the AsyncAPI schema: %v", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatalf("decode document: %v", err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Fatalf("document is not valid AsyncAPI 3.0.0: %v\n%s", err, j)
	}
}

// validate fails t unless doc encodes to a valid AsyncAPI 3.0.0 document.
func validate(t *testing.T, doc *asyncapi.Document) []byte {
	t.Helper()
	j, err := doc.JSON()
	if err != nil {
		t.Fatal(err)
	}
	validateJSON(t, j)
	return j
}

// TestValidatorRejects shows that the validation the other tests rely on
// can fail: documents that break the specification are rejected.
func TestValidatorRejects(t *testing.T) {
	sch, err := officialSchema()
	if err != nil {
		t.Fatal(err)
	}
	for name, doc := range map[string]string{
		"wrong version":  `{"asyncapi":"2.6.0","info":{"title":"t","version":"1"}}`,
		"no info title":  `{"asyncapi":"3.0.0","info":{"version":"1"}}`,
		"bad action":     `{"asyncapi":"3.0.0","info":{"title":"t","version":"1"},"operations":{"o":{"action":"publish","channel":{"$ref":"#/channels/c"}}}}`,
		"server no host": `{"asyncapi":"3.0.0","info":{"title":"t","version":"1"},"servers":{"s":{"protocol":"nats"}}}`,
		"unknown field":  `{"asyncapi":"3.0.0","info":{"title":"t","version":"1"},"channels":{"c":{"address":"a","queue":"q"}}}`,
		"nats queue too long": `{"asyncapi":"3.0.0","info":{"title":"t","version":"1"},"operations":{"o":{"action":"receive","channel":{"$ref":"#/channels/c"},"bindings":{"nats":{"queue":"` +
			string(bytes.Repeat([]byte("q"), 256)) + `"}}}}}`,
	} {
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(doc)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if sch.Validate(inst) == nil {
			t.Errorf("%s: accepted by the AsyncAPI schema", name)
		}
	}
}
