package asyncapi_test

import (
	"encoding/json"
	"testing"

	"go.yaml.in/yaml/v3"
)

// yamlToJSON decodes a YAML document and encodes it as JSON, so that it can
// be validated like the JSON one.
func yamlToJSON(t *testing.T, y []byte) []byte {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(y, &v); err != nil {
		t.Fatalf("decode YAML: %v\n%s", err, y)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode YAML as JSON: %v", err)
	}
	return j
}
