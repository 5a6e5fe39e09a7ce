package middleware

// ScopeName is the instrumentation scope name of the tracer and meter the
// Telemetry middleware uses.
const ScopeName = "github.com/tracebus/tracebus/middleware"

// version is the tracebus release the middleware belongs to.
const version = "0.1.0"

// Version returns the version of the instrumentation, reported as the
// instrumentation scope version.
func Version() string { return version }
