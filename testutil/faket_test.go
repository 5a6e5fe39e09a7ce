package testutil_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// fakeT is a testing.TB that records failures instead of failing: tests
// use it to show that an assertion fails when it must, Examples to run
// test code. Methods it does not define panic (the embedded TB is nil).
type fakeT struct {
	testing.TB
	echo io.Writer // failures are also written here, if set
	out  io.Writer // Output, if set; io.Discard otherwise

	mu       sync.Mutex
	errors   []string
	failed   bool
	cleanups []func()
}

func newFakeT(echo io.Writer) *fakeT { return &fakeT{echo: echo} }

func (f *fakeT) Helper()      {}
func (f *fakeT) Name() string { return "fake" }
func (f *fakeT) Output() io.Writer {
	if f.out != nil {
		return f.out
	}
	return io.Discard
}
func (f *fakeT) Context() context.Context { return context.Background() }
func (f *fakeT) Log(...any)               {}
func (f *fakeT) Logf(string, ...any)      {}

// TempDir returns a new directory, removed by finish.
func (f *fakeT) TempDir() string {
	dir, err := os.MkdirTemp("", "fakeT-")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func (f *fakeT) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

func (f *fakeT) record(msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errors = append(f.errors, msg)
	f.failed = true
	if f.echo != nil {
		fmt.Fprintln(f.echo, "FAIL:", msg)
	}
}

func (f *fakeT) Error(args ...any)                 { f.record(fmt.Sprint(args...)) }
func (f *fakeT) Errorf(format string, args ...any) { f.record(fmt.Sprintf(format, args...)) }
func (f *fakeT) Fatal(args ...any)                 { f.record(fmt.Sprint(args...)); runtime.Goexit() }
func (f *fakeT) Fatalf(format string, args ...any) {
	f.record(fmt.Sprintf(format, args...))
	runtime.Goexit()
}

func (f *fakeT) Fail() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed = true
}

func (f *fakeT) FailNow() { f.Fail(); runtime.Goexit() }

func (f *fakeT) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

// run runs fn as a test body, in a goroutine of its own so that FailNow
// ends fn only; it reports whether fn ran to its end.
func (f *fakeT) run(fn func()) (completed bool) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
		completed = true
	}()
	<-done
	return completed
}

// finish runs the cleanups, the last registered first.
func (f *fakeT) finish() {
	f.mu.Lock()
	cleanups := f.cleanups
	f.cleanups = nil
	f.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
}

// failures returns the recorded failures, one per line.
func (f *fakeT) failures() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.errors, "\n")
}
