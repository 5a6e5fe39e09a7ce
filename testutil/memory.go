package testutil

import (
	"testing"

	"github.com/tracebus/tracebus/broker/memory"
)

// Memory returns a memory transport made with opts, failing t if the
// options are invalid.
func Memory(t testing.TB, opts ...memory.Option) *memory.Transport {
	t.Helper()
	tr, err := memory.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}
