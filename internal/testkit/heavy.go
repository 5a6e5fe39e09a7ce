package testkit

import "os"

// HeavyEnv is the environment variable that switches the fault and load
// tests to their heavy variants: TRACEBUS_HEAVY=1 go test ./...
const HeavyEnv = "TRACEBUS_HEAVY"

// Heavy reports whether the heavy variants of the fault and load tests run
// (HeavyEnv set to a non-empty value other than "0"). The short variants
// run in CI on every change.
func Heavy() bool {
	v := os.Getenv(HeavyEnv)
	return v != "" && v != "0"
}

// Scale returns heavy when the heavy variants run and short otherwise: a
// message count, a number of rounds.
func Scale(short, heavy int) int {
	if Heavy() {
		return heavy
	}
	return short
}
