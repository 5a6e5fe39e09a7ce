package natsbroker

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// When Close's context ends while a handler still runs, runner.wait
// returns at once and leaves no goroutine behind waiting for the handler
// (which may never return); once the handler returns, the workers exit.
func TestRunnerWaitLeavesNoGoroutine(t *testing.T) {
	for _, concurrency := range []int{1, 3} {
		t.Run(map[int]string{1: "inline", 3: "workers"}[concurrency], func(t *testing.T) {
			before := goleak.IgnoreCurrent()
			r := newRunner(t.Context(), nil, concurrency)
			running := make(chan struct{})
			release := make(chan struct{})
			submitted := make(chan bool, 1)
			go func() {
				submitted <- r.submit(func() { close(running); <-release }, r.stop, nil)
			}()
			select {
			case <-running:
			case <-time.After(time.Minute):
				t.Fatal("the job did not start")
			}
			// Everything alive now belongs to the job (and, for an inline
			// runner, to the source running it).
			withJob := goleak.IgnoreCurrent()

			r.stopTaking()
			r.finish()
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if err := r.wait(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("wait with the job running: %v, want context.Canceled", err)
			}
			r.giveUp()
			if err := goleak.Find(withJob); err != nil {
				t.Errorf("wait left a goroutine behind: %v", err)
			}

			close(release)
			if ok := <-submitted; !ok {
				t.Fatal("submit: the job was not run")
			}
			if err := r.wait(t.Context()); err != nil {
				t.Fatalf("wait once the job returned: %v", err)
			}
			if err := goleak.Find(before); err != nil {
				t.Errorf("goroutines left once the job returned: %v", err)
			}
		})
	}
}
