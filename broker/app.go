package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// App runs several brokers as one service: a service that consumes from
// NATS and publishes to Kafka has a broker for each, and the App owns
// their lifecycle. Run starts them, waits until its context is done, and
// stops them in the order that loses nothing:
//
//  1. the before-stop hooks run, and the app stops being ready;
//  2. every broker stops taking new messages (its subscriptions stop
//     fetching) and the handlers in flight finish, on all brokers at once;
//     they may still publish on any broker of the app, which all keep
//     their transports open meanwhile;
//  3. every transport closes: publishing fails with ErrClosed from now on;
//  4. the after-stop hooks run;
//  5. telemetry is flushed (WithTelemetryShutdown), last, so that it includes
//     the spans of the drain and of the hooks.
//
// The whole stop is bounded by the shutdown timeout (WithShutdownTimeout);
// when it expires during the drain, the handlers' contexts are cancelled
// and unsettled messages are redelivered where the system does that.
//
// An App runs once: after Stop it cannot be started again. Brokers given to
// an App are started and closed by it; do not call their Run or Close.
// An App is safe for concurrent use.
type App struct {
	cfg appConfig

	// starting serialises Start against the beginning of Stop. A channel
	// of one token rather than a mutex: Start holds it across the brokers'
	// round trips to their servers, and Stop must be able to give up
	// waiting for it when its ctx ends.
	starting chan struct{}
	phase    atomic.Int32
	stop     step
	stopErr  error // set before stop.done is closed
}

// Phases of an App.
const (
	appNew int32 = iota
	appStarting
	appRunning
	appStopping
	appStopped
)

func phaseName(p int32) string {
	switch p {
	case appNew:
		return "not started"
	case appStarting:
		return "starting"
	case appRunning:
		return "running"
	case appStopping:
		return "stopping"
	}
	return "stopped"
}

// AppOption configures an App.
type AppOption interface {
	applyApp(*appConfig)
}

type appConfig struct {
	brokers         []*Broker
	shutdownTimeout time.Duration
	beforeStart     []func(context.Context) error
	afterStart      []func(context.Context) error
	beforeStop      []func(context.Context) error
	afterStop       []func(context.Context) error
	telemetry       []func(context.Context) error
}

type appOptionFunc func(*appConfig)

func (f appOptionFunc) applyApp(c *appConfig) { f(c) }

// NewApp returns an App configured by opts; WithBrokers gives it its
// brokers.
func NewApp(opts ...AppOption) *App {
	a := &App{
		cfg:      appConfig{shutdownTimeout: defaultShutdownTimeout},
		stop:     newStep(),
		starting: make(chan struct{}, 1),
	}
	for _, o := range opts {
		if o != nil {
			o.applyApp(&a.cfg)
		}
	}
	return a
}

// WithBrokers adds brokers to the app. They start in the order given;
// they stop together. Calling it again appends.
func WithBrokers(bs ...*Broker) AppOption {
	return appOptionFunc(func(c *appConfig) {
		for _, b := range bs {
			if b != nil {
				c.brokers = append(c.brokers, b)
			}
		}
	})
}

// WithShutdownTimeout bounds the stop that Run performs when its context is
// done: hooks, drain, transports and telemetry together. The default is
// 30 seconds. A value of 0 or less keeps the default.
func WithShutdownTimeout(d time.Duration) AppOption {
	return appOptionFunc(func(c *appConfig) {
		if d > 0 {
			c.shutdownTimeout = d
		}
	})
}

// Hooks are functions an App runs around the start and stop of its brokers;
// a nil field is skipped. A hook's ctx is the one given to Start (before and
// after start) or the stop's, bounded by the shutdown timeout (before and
// after stop).
type Hooks struct {
	// BeforeStart runs before any broker starts: connect to a database,
	// load configuration. If it fails, the start is aborted: no broker
	// starts, the brokers are closed, the telemetry is flushed, and no stop
	// hook runs.
	BeforeStart func(ctx context.Context) error
	// AfterStart runs once every broker has started and before the app
	// reports ready: publish a startup message, register with service
	// discovery. If it fails, the start is aborted and the app stops as
	// Stop does, stop hooks included, so that what BeforeStart set up is
	// released.
	AfterStart func(ctx context.Context) error
	// BeforeStop runs when the app begins to stop, while every broker still
	// consumes and publishes.
	BeforeStop func(ctx context.Context) error
	// AfterStop runs after every transport closed and before the telemetry
	// is flushed: close a database.
	AfterStop func(ctx context.Context) error
}

// WithHooks adds hooks to the app. Given several times, the hooks of one
// stage run in the order given. The stop hooks run whenever every
// BeforeStart hook succeeded; a failing stop hook does not stop the
// shutdown, and its error is returned with the others.
func WithHooks(h Hooks) AppOption {
	return appOptionFunc(func(c *appConfig) {
		for _, st := range []struct {
			hook func(context.Context) error
			to   *[]func(context.Context) error
		}{{h.BeforeStart, &c.beforeStart}, {h.AfterStart, &c.afterStart}, {h.BeforeStop, &c.beforeStop}, {h.AfterStop, &c.afterStop}} {
			if st.hook != nil {
				*st.to = append(*st.to, st.hook)
			}
		}
	})
}

// WithTelemetryShutdown adds functions that flush and shut down telemetry, such
// as the Shutdown method of the providers exporters.Setup returns or of an
// SDK TracerProvider and MeterProvider. They run last in the stop, in
// order, after the transports closed and the after-stop hooks ran, and
// also when a start fails.
func WithTelemetryShutdown(fns ...func(ctx context.Context) error) AppOption {
	return appOptionFunc(func(c *appConfig) {
		for _, fn := range fns {
			if fn != nil {
				c.telemetry = append(c.telemetry, fn)
			}
		}
	})
}

// Start runs the before-start hooks, starts every broker in order (with
// its subscriptions) and runs the after-start hooks; the app is ready
// afterwards. ctx goes to the hooks and to Broker.Start. When a step fails,
// Start undoes what was done (see Hooks), within the
// shutdown timeout, and returns the failure joined with any error of the
// undoing. Start fails with errAlreadyStarted when called twice and with
// ErrClosed after Stop.
func (a *App) Start(ctx context.Context) error {
	a.starting <- struct{}{}
	defer func() { <-a.starting }()
	switch a.phase.Load() {
	case appStarting, appRunning:
		return errAlreadyStarted
	case appStopping, appStopped:
		return ErrClosed
	}
	a.phase.Store(appStarting)
	if err := a.checkBrokers(); err != nil {
		return a.undo(ctx, err, false)
	}
	if errs := runHooks(ctx, "before-start", a.cfg.beforeStart, false); errs != nil {
		return a.undo(ctx, errs[0], false)
	}
	for i, b := range a.cfg.brokers {
		if err := b.Start(ctx); err != nil {
			return a.undo(ctx, fmt.Errorf("tracebus: app: start broker %d (%s): %w", i, b.transport.Info().System, err), true)
		}
	}
	if errs := runHooks(ctx, "after-start", a.cfg.afterStart, false); errs != nil {
		return a.undo(ctx, errs[0], true)
	}
	a.phase.Store(appRunning)
	return nil
}

func (a *App) checkBrokers() error {
	seen := make(map[*Broker]bool, len(a.cfg.brokers))
	for i, b := range a.cfg.brokers {
		if seen[b] {
			return fmt.Errorf("tracebus: app: broker %d given twice: %w", i, ErrInvalid)
		}
		seen[b] = true
	}
	return nil
}

// undo stops what a failed Start began, with the shutdown timeout, and
// returns cause joined with what went wrong meanwhile.
func (a *App) undo(ctx context.Context, cause error, hooks bool) error {
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.shutdownTimeout)
	defer cancel()
	return errors.Join(cause, a.stopOnce(stopCtx, hooks))
}

// Run starts the app, blocks until ctx is done, then stops it within the
// shutdown timeout. It returns the error of Start or of Stop, or nil. When
// Stop is called by someone else meanwhile, Run returns once that stop
// finished, with its error.
func (a *App) Run(ctx context.Context) error {
	if err := a.Start(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-a.stop.done:
		return a.stopErr
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.shutdownTimeout)
	defer cancel()
	return a.Stop(stopCtx)
}

// Stop stops the app in the order described at App, within ctx. A never
// started app only closes its brokers and flushes its telemetry, without
// hooks. Calling Stop again waits for the first call and returns nil, or
// ctx.Err() when its own ctx is done first. Stop waits for a Start in
// progress to finish; when ctx ends first, it returns an error wrapping
// ctx.Err() and stops nothing.
func (a *App) Stop(ctx context.Context) error {
	select {
	case a.starting <- struct{}{}:
	default: // a Start is in progress
		select {
		case a.starting <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("tracebus: app: stop: a start is still in progress: %w", ctx.Err())
		}
	}
	p := a.phase.Load()
	if p == appNew || p == appRunning {
		// Holding the start token, so that a Start cannot begin once
		// Stop has.
		a.phase.Store(appStopping)
	}
	<-a.starting
	return a.stopOnce(ctx, p == appRunning)
}

func (a *App) stopOnce(ctx context.Context, hooks bool) error {
	return a.stop.run(ctx, func() error {
		a.stopErr = a.shutdown(ctx, hooks)
		return a.stopErr
	})
}

func (a *App) shutdown(ctx context.Context, hooks bool) error {
	a.phase.Store(appStopping)
	defer a.phase.Store(appStopped)
	var errs []error
	if hooks {
		errs = append(errs, runHooks(ctx, "before-stop", a.cfg.beforeStop, true)...)
	}
	errs = append(errs, eachBroker(a.cfg.brokers, func(b *Broker) error { return b.stopSubscriptions(ctx) })...)
	errs = append(errs, eachBroker(a.cfg.brokers, func(b *Broker) error { return b.closeTransport(ctx) })...)
	if hooks {
		errs = append(errs, runHooks(ctx, "after-stop", a.cfg.afterStop, true)...)
	}
	for i, fn := range a.cfg.telemetry {
		if err := fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("tracebus: app: shut down telemetry %d: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// eachBroker calls fn for every broker at once and returns the errors,
// each naming its broker.
func eachBroker(bs []*Broker, fn func(*Broker) error) []error {
	errs := make([]error, len(bs))
	var wg sync.WaitGroup
	for i, b := range bs {
		wg.Go(func() {
			if err := fn(b); err != nil {
				errs[i] = fmt.Errorf("tracebus: app: broker %d (%s): %w", i, b.transport.Info().System, err)
			}
		})
	}
	wg.Wait()
	return errs
}

// runHooks runs hooks in order. Start hooks (all false) stop at the first
// failure; stop hooks (all true) all run, whatever the others return.
func runHooks(ctx context.Context, stage string, hooks []func(context.Context) error, all bool) []error {
	var errs []error
	for i, h := range hooks {
		if err := h(ctx); err != nil {
			errs = append(errs, fmt.Errorf("tracebus: app: %s hook %d: %w", stage, i, err))
			if !all {
				break
			}
		}
	}
	return errs
}

// SignalContext returns a copy of parent that is cancelled on SIGINT or
// SIGTERM, for App.Run:
//
//	ctx, stop := broker.SignalContext(context.Background())
//	defer stop()
//	err := app.Run(ctx)
//
// After the first signal the signals get their default behaviour back, so a
// second Ctrl-C ends a process whose drain takes too long. stop releases
// the signal handling early.
func SignalContext(parent context.Context) (ctx context.Context, stop context.CancelFunc) {
	ctx, stop = signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	return ctx, stop
}
