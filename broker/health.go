package broker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"sync"
	"time"
)

// Errors of health checks. Match them with errors.Is.
var (
	// ErrUnavailable: a transport's Ping found its system unreachable (a
	// NATS connection that is not connected, no Kafka seed broker
	// answering), or a publish found no server to store the message for
	// now (a JetStream stream without quorum); a later retry may succeed.
	ErrUnavailable = errors.New("tracebus: unavailable")
	// ErrNotReady: an App that is not running (starting, draining,
	// stopped) was asked whether it is ready.
	ErrNotReady = errors.New("tracebus: not ready")
)

// Ping checks that the broker's system is reachable, through its
// transport, within ctx. It returns ErrClosed once the broker is closed.
func (b *Broker) Ping(ctx context.Context) error {
	if b.state.Load() == stateClosed {
		return ErrClosed
	}
	return b.transport.Ping(ctx)
}

// defaultHealthTimeout bounds the pings of a readiness check whose context
// has no earlier deadline.
const defaultHealthTimeout = 5 * time.Second

// Live reports whether the app is alive: nil from creation until it has
// stopped (draining included: a liveness probe must not restart a service
// that is finishing its work), ErrClosed afterwards. It does not ping the
// transports: an unreachable broker is a reason to take the service out of
// rotation (Ready), not to restart it.
func (a *App) Live() error {
	if a.phase.Load() == appStopped {
		return ErrClosed
	}
	return nil
}

// Ready reports whether the app should get traffic: it is running (every
// broker started, every subscription with it, the after-start hooks done;
// not yet draining), every transport answers its Ping
// within ctx (5 seconds when ctx has no deadline), and no subscription
// failed to start again after Subscription.Stop (one stopped on purpose
// does not count). The error matches ErrNotReady for an app that is not
// running or a subscription that is down, and ErrUnavailable or the
// transport's own error for a failed ping.
func (a *App) Ready(ctx context.Context) error {
	if p := a.phase.Load(); p != appRunning {
		return fmt.Errorf("%w: app is %s", ErrNotReady, phaseName(p))
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultHealthTimeout)
		defer cancel()
	}
	errs := make([]error, len(a.cfg.brokers))
	var wg sync.WaitGroup
	for i, b := range a.cfg.brokers {
		wg.Go(func() {
			if err := b.Ping(ctx); err != nil {
				errs[i] = fmt.Errorf("tracebus: broker %d (%s): %w", i, b.transport.Info().System, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for i, b := range a.cfg.brokers {
		if err := b.subscriptionsDown(); err != nil {
			return fmt.Errorf("tracebus: broker %d (%s): %w", i, b.transport.Info().System, err)
		}
	}
	// A drain may have begun while the pings ran.
	if p := a.phase.Load(); p != appRunning {
		return fmt.Errorf("%w: app is %s", ErrNotReady, phaseName(p))
	}
	return nil
}

// HealthHandler returns an http.Handler for liveness and readiness probes.
// It answers GET and HEAD requests whose path ends in "/livez" (Live) or
// "/readyz" (Ready, bounded by the request's context and the app's health
// timeout) with 200 and "ok", or 503 and the reason; other paths get 404.
// Mount it where the probes point:
//
//	mux.Handle("/livez", app.HealthHandler())
//	mux.Handle("/readyz", app.HealthHandler())
func (a *App) HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var check func() error
		switch path.Base(r.URL.Path) {
		case "livez":
			check = a.Live
		case "readyz":
			check = func() error { return a.Ready(r.Context()) }
		default:
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		if err := check(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
}
