package exporters_test

import (
	"os"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The tests set the OTEL_* variables they need; a developer's own
	// (an exported OTEL_EXPORTER_OTLP_ENDPOINT, say) must not leak in.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "OTEL_") {
			os.Unsetenv(k)
		}
	}
	// Dead-collector tests make the exporters fail on purpose; their
	// complaints through otel.Handle are expected, not news.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {}))
	goleak.VerifyTestMain(m)
}
