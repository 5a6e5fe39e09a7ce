package asyncapi

import (
	"bytes"
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// JSON returns the document as indented JSON. NATS wildcards and other
// characters are written as they are, not escaped for HTML.
func (d *Document) JSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("asyncapi: encode JSON: %w", err)
	}
	return buf.Bytes(), nil
}

// YAML returns the document as YAML, with its fields in the same order as
// in JSON (asyncapi, info, servers, channels, operations, components).
func (d *Document) YAML() ([]byte, error) {
	j, err := d.JSON()
	if err != nil {
		return nil, err
	}
	// JSON is YAML: decoding it into a node keeps the order of the fields,
	// which a map would lose.
	var n yaml.Node
	if err := yaml.Unmarshal(j, &n); err != nil {
		return nil, fmt.Errorf("asyncapi: encode YAML: %w", err)
	}
	blockStyle(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, fmt.Errorf("asyncapi: encode YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("asyncapi: encode YAML: %w", err)
	}
	return buf.Bytes(), nil
}

// blockStyle clears the flow and quoting styles the JSON syntax gave the
// nodes, so that the encoder writes block YAML and quotes only where needed.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}
