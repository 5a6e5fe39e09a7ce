package exporters

import (
	"errors"
	"fmt"
)

// Errors returned by Setup and Providers.Shutdown. Match them with errors.Is.
var (
	// ErrInvalidOption: an option value Setup cannot use, such as an unknown
	// OTLP protocol, an endpoint that is not an http or https URL, or a nil
	// writer or exporter.
	ErrInvalidOption = errors.New("exporters: invalid option")
	// ErrNotExported matches every *NotExportedError.
	ErrNotExported = errors.New("exporters: spans not exported")
)

// NotExportedError is returned by Shutdown, joined with the other errors,
// for each exporter that did not get every ended span out: the batch queue
// was full and dropped some, the collector refused or failed them, or the
// shutdown deadline came first. Get it with errors.As.
type NotExportedError struct {
	// Exporter names the exporter: "otlp grpc", "waterfall", the value of
	// OTEL_TRACES_EXPORTER, or the Go type given to WithSpanExporter.
	Exporter string
	// Lost of Ended sampled spans did not reach the exporter's destination.
	Lost, Ended int64
	// Err is the last export error, if there was one.
	Err error
}

// Error says which exporter lost how many spans, and why if known.
func (e *NotExportedError) Error() string {
	msg := fmt.Sprintf("exporters: %s: %d of %d spans not exported", e.Exporter, e.Lost, e.Ended)
	if e.Err != nil {
		msg += " (last export error: " + e.Err.Error() + ")"
	}
	return msg
}

// Is makes errors.Is(err, ErrNotExported) hold.
func (e *NotExportedError) Is(target error) bool { return target == ErrNotExported }

// Unwrap returns the last export error.
func (e *NotExportedError) Unwrap() error { return e.Err }
