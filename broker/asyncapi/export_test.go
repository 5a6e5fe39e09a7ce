package asyncapi

// The tests of package asyncapi_test build documents from sources written by
// hand, without brokers; these names give them the unexported ones.

// Source is source, for the tests.
type Source = source

// SourceOf is sourceOf, for the tests.
var SourceOf = sourceOf

// BuildSources is buildSources, for the tests.
func (g *Generator) BuildSources(sources ...Source) (*Document, error) {
	return g.buildSources(sources...)
}
