package broker_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/testutil"
)

// probe returns the status code of GET url and its body.
func probe(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	must(t, err)
	res, err := http.DefaultClient.Do(req)
	must(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	must(t, err)
	return res.StatusCode, string(body)
}

// Readiness, asked over HTTP, flips at the right moments: not while
// starting (not even once the subscriptions started but the after-start
// hooks still run), ready once started, not ready as soon as the drain
// begins while liveness holds, neither once stopped.
func TestAppReadinessOverHTTP(t *testing.T) {
	b := broker.New(testutil.Memory(t))
	entered := make(chan struct{})
	release := make(chan struct{})
	must(t, b.Subscribe("work", func(context.Context, *broker.Message) error {
		close(entered)
		<-release
		return nil
	}))
	type seen struct{ live, ready int }
	var beforeStart, afterStart, beforeStop seen
	var srv *httptest.Server
	look := func(s *seen) func(context.Context) error {
		return func(context.Context) error {
			s.live, _ = probe(t, srv.URL+"/livez")
			s.ready, _ = probe(t, srv.URL+"/readyz")
			return nil
		}
	}
	app := broker.NewApp(
		broker.WithBrokers(b),
		broker.WithHooks(broker.Hooks{
			BeforeStart: look(&beforeStart),
			AfterStart:  look(&afterStart),
			BeforeStop:  look(&beforeStop),
		}),
	)
	mux := http.NewServeMux()
	mux.Handle("/livez", app.HealthHandler())
	mux.Handle("/readyz", app.HealthHandler())
	srv = httptest.NewServer(mux)
	defer srv.Close()

	if code, body := probe(t, srv.URL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("ready before start: %d %q", code, body)
	}
	if code, _ := probe(t, srv.URL+"/livez"); code != http.StatusOK {
		t.Fatalf("live before start: %d", code)
	}
	must(t, app.Start(t.Context()))
	must(t, b.Ping(t.Context()))
	if code, body := probe(t, srv.URL+"/readyz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("ready after start: %d %q", code, body)
	}
	for name, s := range map[string]seen{"before start": beforeStart, "after start": afterStart} {
		if s != (seen{http.StatusOK, http.StatusServiceUnavailable}) {
			t.Errorf("%s hook saw live %d, ready %d; want 200, 503", name, s.live, s.ready)
		}
	}

	must(t, b.Publish(t.Context(), &broker.Message{Destination: "work"}))
	waitFor(t, entered, "the handler did not start")
	stopped := make(chan error, 1)
	go func() { stopped <- app.Stop(context.Background()) }()
	testutil.Eventually(t, time.Minute, func() bool {
		return errors.Is(b.Subscribe("probe", noop), broker.ErrClosed)
	}, "the drain did not begin")
	code, body := probe(t, srv.URL+"/readyz")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("ready while draining: %d %q", code, body)
	}
	if code, _ := probe(t, srv.URL+"/livez"); code != http.StatusOK {
		t.Fatalf("live while draining: %d", code)
	}
	if beforeStop != (seen{http.StatusOK, http.StatusServiceUnavailable}) {
		t.Errorf("before-stop hook saw live %d, ready %d; want 200, 503", beforeStop.live, beforeStop.ready)
	}
	close(release)
	select {
	case err := <-stopped:
		must(t, err)
	case <-time.After(time.Minute):
		t.Fatal("Stop did not return")
	}
	if err := b.Ping(t.Context()); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("ping after stop: %v, want ErrClosed", err)
	}
	for _, p := range []string{"/livez", "/readyz"} {
		if code, _ := probe(t, srv.URL+p); code != http.StatusServiceUnavailable {
			t.Errorf("%s after stop: %d, want 503", p, code)
		}
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/metrics", http.StatusNotFound},
		{http.MethodPost, "/health/readyz", http.StatusMethodNotAllowed},
		{http.MethodHead, "/health/livez", http.StatusServiceUnavailable},
	} {
		rec := httptest.NewRecorder()
		app.HealthHandler().ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		if rec.Code != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, rec.Code, c.want)
		}
	}
}
