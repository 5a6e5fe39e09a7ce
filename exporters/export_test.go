package exporters

// PipelineNames lists the span exporters p sends to, for tests that check
// which exporter the environment chose. WithMemory's recorder is not one.
func PipelineNames(p *Providers) []string {
	names := make([]string, 0, len(p.pipelines))
	for _, pl := range p.pipelines {
		names = append(names, pl.name)
	}
	return names
}

// MetricReaderCount is the number of metric readers p reads.
func MetricReaderCount(p *Providers) int { return len(p.metrics.readers) }

// ColorFor is the terminal detection of NewWaterfall.
var ColorFor = colorFor

// WithSynchronousExport is withSynchronousExport, for the tests.
var WithSynchronousExport = withSynchronousExport
