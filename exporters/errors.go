package exporters

import "errors"

// Errors returned by Setup and Providers.Shutdown. Match them with errors.Is.
var (
	// ErrInvalidOption: an option value Setup cannot use, such as an unknown
	// OTLP protocol, an endpoint that is not an http or https URL, or a nil
	// writer or exporter.
	ErrInvalidOption = errors.New("exporters: invalid option")
	// ErrNotExported: Shutdown could not hand every ended span to its
	// exporter, because the batch queue was full, the collector failed, or
	// the shutdown deadline passed first. The error says how many spans each
	// exporter lost.
	ErrNotExported = errors.New("exporters: spans not exported")
)
