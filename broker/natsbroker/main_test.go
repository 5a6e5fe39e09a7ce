package natsbroker_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when goroutines outlive the tests: every
// subscription, watcher, fetch loop and keep-alive timer must end with the
// broker that started it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
