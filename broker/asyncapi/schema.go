package asyncapi

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/invopop/jsonschema"
)

const schemaRefPrefix = "#/components/schemas/"

// schemas reflects Go types into JSON Schemas and collects the named types
// under components/schemas, so that a type used by several messages is
// written once and referenced.
type schemas struct {
	reflector jsonschema.Reflector
	defs      map[string]json.RawMessage
	names     map[reflect.Type]string
	taken     map[string]reflect.Type
}

func newSchemas() *schemas {
	s := &schemas{
		defs:  map[string]json.RawMessage{},
		names: map[reflect.Type]string{},
		taken: map[string]reflect.Type{},
	}
	s.reflector = jsonschema.Reflector{
		Anonymous: true,
		Namer:     s.name,
	}
	return s
}

// name gives each named type a components key that is unique in the
// document: the type's name, qualified by its package path when another
// package has a type of the same name.
func (s *schemas) name(t reflect.Type) string {
	if n, ok := s.names[t]; ok {
		return n
	}
	if t.Name() == "" || t.PkgPath() == "" {
		// Unnamed and predeclared types (string, int) stay inline.
		return ""
	}
	n := componentKey(t.Name())
	if _, clash := s.taken[n]; clash {
		n = componentKey(t.PkgPath() + "." + t.Name())
	}
	for i := 2; ; i++ {
		if _, clash := s.taken[n]; !clash {
			break
		}
		n = componentKey(t.PkgPath()+"."+t.Name()) + "_" + strconv.Itoa(i)
	}
	s.names[t] = n
	s.taken[n] = t
	return n
}

// schema returns the JSON Schema of t: a reference for named struct types,
// whose definitions go to components/schemas, or an inline schema.
func (s *schemas) schema(t reflect.Type) (raw json.RawMessage, err error) {
	defer func() {
		// The reflector panics on types JSON cannot represent (channels,
		// functions, complex numbers).
		if r := recover(); r != nil {
			raw, err = nil, fmt.Errorf("%w: %s (%v)", ErrUnsupportedType, t, r)
		}
	}()
	root := s.reflector.ReflectFromType(t)
	defs := root.Definitions
	root.Definitions = nil
	root.Version = ""
	root.ID = ""
	for name, def := range defs {
		if _, done := s.defs[name]; done {
			continue
		}
		rewriteRefs(def)
		b, err := json.Marshal(def)
		if err != nil {
			return nil, fmt.Errorf("schema of %s: %w", t, err)
		}
		s.defs[name] = b
	}
	rewriteRefs(root)
	b, err := json.Marshal(root)
	if err != nil {
		return nil, fmt.Errorf("schema of %s: %w", t, err)
	}
	if string(b) == "true" {
		// An "any" payload: AsyncAPI wants a schema object here.
		return json.RawMessage(`{}`), nil
	}
	return b, nil
}

// rewriteRefs points the reflector's "#/$defs/" references at
// components/schemas, where the definitions are kept: references in an
// AsyncAPI document resolve against the document, not the schema.
func rewriteRefs(s *jsonschema.Schema) {
	if s == nil {
		return
	}
	if name, ok := strings.CutPrefix(s.Ref, "#/$defs/"); ok {
		s.Ref = schemaRefPrefix + name
	}
	for _, l := range [][]*jsonschema.Schema{s.AllOf, s.AnyOf, s.OneOf, s.PrefixItems} {
		for _, c := range l {
			rewriteRefs(c)
		}
	}
	for _, c := range []*jsonschema.Schema{s.Not, s.If, s.Then, s.Else, s.Items, s.Contains,
		s.AdditionalProperties, s.PropertyNames, s.ContentSchema} {
		rewriteRefs(c)
	}
	for _, m := range []map[string]*jsonschema.Schema{s.DependentSchemas, s.PatternProperties, s.Definitions} {
		for _, c := range m {
			rewriteRefs(c)
		}
	}
	if s.Properties != nil {
		for p := s.Properties.Oldest(); p != nil; p = p.Next() {
			rewriteRefs(p.Value)
		}
	}
}

// componentKey makes s a valid components key (^[\w\d\.\-_]+$).
func componentKey(s string) string {
	return sanitize(s, func(r rune) bool { return isIDRune(r) || r == '.' })
}

// sanitize replaces every rune that ok rejects with "_".
func sanitize(s string, ok func(rune) bool) string {
	if s == "" {
		return "_"
	}
	var b strings.Builder
	for _, r := range s {
		if ok(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func isIDRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
}

// reserve adds a schema of our own under name, so that no reflected type
// takes that name.
func (s *schemas) reserve(name string, schema json.RawMessage) {
	s.taken[name] = nil
	s.defs[name] = schema
}

func (s *schemas) isTaken(name string) bool {
	_, ok := s.taken[name]
	return ok
}
