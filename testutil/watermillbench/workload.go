package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tracebus/tracebus/internal/e2ebench"
)

// event is what every handler decodes a message into.
type event struct {
	ID       string            `json:"id"`
	Customer string            `json:"customer"`
	Amount   float64           `json:"amount"`
	Currency string            `json:"currency"`
	Created  time.Time         `json:"created"`
	Tags     map[string]string `json:"tags"`
	Note     string            `json:"note"`
}

// payload is the 1 KiB JSON body of every message.
var payload = func() []byte {
	e := event{ID: "ord-000000001", Customer: "customer-42", Amount: 129.5, Currency: "EUR",
		Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Tags: map[string]string{"channel": "web", "region": "eu-west"}}
	b, _ := json.Marshal(e)
	e.Note = strings.Repeat("x", 1024-len(b))
	b, _ = json.Marshal(e)
	if len(b) != 1024 {
		panic(fmt.Sprintf("payload is %d bytes", len(b)))
	}
	return b
}()

// A wiring connects one variant for one run: it subscribes to dest with a
// handler that calls handle with each message's body and acknowledges or
// commits the message when handle returned nil, and returns the function
// that publishes one message and the one that closes everything.
type wiring func(ctx context.Context, e *env, dest string, handle func([]byte) error) (publish func(context.Context) error, stop func(), err error)

// result is one run of one variant.
type result struct {
	mode, variant string
	msgsPerSec    float64
	cpuPerMsg     time.Duration
	partial       bool // cut short by the limit
}

// run measures one run: a first message published and awaited (so that
// joining a group or creating a consumer is not measured), a collection,
// then n messages published by cfg.publishers goroutines with at most
// cfg.window unhandled, until every one was handled or cfg.limit passed.
func run(ctx context.Context, e *env, cfg config, mode, variant, dest string, w wiring) (result, error) {
	res := result{mode: mode, variant: variant}
	n := cfg.messages(mode)
	window := make(chan struct{}, cfg.window)
	var handled, target atomic.Int64
	reached := make(chan struct{}, 1)
	target.Store(1)
	handle := func(body []byte) error {
		var ev event
		if err := json.Unmarshal(body, &ev); err != nil {
			return err
		}
		if ev.ID == "" {
			return errors.New("watermillbench: a message without an id")
		}
		if handled.Add(1) == target.Load() {
			select {
			case reached <- struct{}{}:
			default:
			}
		}
		select {
		case <-window:
		default: // a redelivery: its slot was freed the first time
		}
		return nil
	}
	publish, stop, err := w(ctx, e, dest, handle)
	if err != nil {
		return res, fmt.Errorf("%s/%s: %w", mode, variant, err)
	}
	defer stop()

	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-reached:
			return true
		case <-t.C:
			return false
		}
	}
	// On core NATS a subscription may reach the server after the first
	// publish (watermill-nats does not flush it), which loses the message:
	// publish again until one is handled.
	warm := false
	for range 60 {
		window <- struct{}{}
		if err := publish(ctx); err != nil {
			return res, fmt.Errorf("%s/%s: first publish: %w", mode, variant, err)
		}
		if warm = wait(time.Second); warm {
			break
		}
	}
	if !warm {
		return res, fmt.Errorf("%s/%s: no first message was handled within a minute", mode, variant)
	}
	for len(window) > 0 { // the slots of lost first messages
		<-window
	}
	base := handled.Load()
	target.Store(base + int64(n))
	runtime.GC()

	var failed atomic.Pointer[error]
	var quit atomic.Bool
	cpu0, start := e2ebench.CPUTime(), time.Now()
	var wg sync.WaitGroup
	for p := range cfg.publishers {
		share := n / cfg.publishers
		if p < n%cfg.publishers {
			share++
		}
		wg.Go(func() {
			for range share {
				window <- struct{}{}
				if quit.Load() {
					return
				}
				if err := publish(ctx); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	res.partial = !wait(cfg.limitOf(mode)) && handled.Load() < base+int64(n)
	elapsed, cpu := time.Since(start), e2ebench.CPUTime()-cpu0
	if res.partial {
		// Let the publishers out: handlers no longer matter.
		quit.Store(true)
		go func() {
			for {
				select {
				case <-window:
				case <-time.After(time.Second):
					return
				}
			}
		}()
	}
	wg.Wait()
	if errp := failed.Load(); errp != nil {
		return res, fmt.Errorf("%s/%s: publish: %w", mode, variant, *errp)
	}
	done := handled.Load() - base
	if done < 1 {
		return res, fmt.Errorf("%s/%s: no message handled within %s", mode, variant, cfg.limitOf(mode))
	}
	res.msgsPerSec = float64(done) / elapsed.Seconds()
	res.cpuPerMsg = cpu / time.Duration(done)
	if res.partial {
		log.Printf("%s/%s: cut short after %s with %d of %d messages handled", mode, variant, cfg.limitOf(mode), done, n)
	}
	return res, nil
}
