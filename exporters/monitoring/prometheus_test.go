package monitoring

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// testBudget bounds the whole Prometheus test: building the example,
// running it and Prometheus, and every query. It takes about 15 s on an
// idle machine; the rest is room for a loaded CI runner.
const testBudget = 3 * time.Minute

// TestDashboardAndAlertsOnPrometheus runs the example with -http -serve,
// lets a real Prometheus scrape every service's endpoint and checks the
// dashboard and the alert rules against it: promtool check rules passes,
// every panel and variable query returns data, every alert expression
// evaluates and Prometheus's rule manager evaluates each rule healthily,
// every metric name in either file is one the library emits (the series
// Prometheus scraped from the example, plus every instrument the telemetry
// middleware registers), and histogram exemplars carry trace ids.
func TestDashboardAndAlertsOnPrometheus(t *testing.T) {
	promBin, promtool := prometheusBinaries(t)
	d, panelQueries := loadDashboard(t)
	alertQueries := loadAlerts(t)
	ctx, cancel := context.WithTimeout(t.Context(), testBudget)
	defer cancel()

	t.Run("promtool check rules", func(t *testing.T) {
		out, err := exec.CommandContext(ctx, promtool, "check", "rules", alertsFile).CombinedOutput()
		if err != nil {
			t.Fatalf("promtool check rules %s: %v\n%s", alertsFile, err, out)
		}
	})

	dir := t.TempDir()
	start := time.Now()
	example := buildExample(ctx, t, dir)
	t.Logf("example built in %s", time.Since(start).Round(time.Millisecond))
	exampleAddr := freeAddr(t)
	exampleOut := &lines{}
	startProcess(ctx, t, exampleOut, example, "-http", exampleAddr, "-serve", "-timeout", "90s")
	services := waitForServices(ctx, t, exampleOut)

	promAddr := freeAddr(t)
	cfg := filepath.Join(dir, "prometheus.yml")
	rules, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	writeConfig(t, cfg, exampleAddr, rules, services)
	promOut := &lines{}
	startProcess(ctx, t, promOut, promBin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr,
		"--enable-feature=exemplar-storage",
		"--log.level=warn")
	p := &promAPI{base: "http://" + promAddr}
	waitFor(ctx, t, "Prometheus ready", promOut, func() bool { return p.ready(ctx) })

	// The example prints this line once every order is shipped or
	// dead-lettered: every series exists from then on. Two scrapes of every
	// target after it and Prometheus has each series with samples enough
	// for rate().
	waitFor(ctx, t, "the example's orders through", exampleOut, func() bool {
		return exampleOut.contains("serving until Ctrl-C")
	})
	flowDone := time.Now()
	waitFor(ctx, t, "two scrapes of every service after the orders", promOut, func() bool {
		since := max(1, int(time.Since(flowDone).Seconds()))
		n, err := p.query(ctx, fmt.Sprintf("count(count_over_time(up[%ds]) >= 2) == %d and min(up) == 1", since, len(services)), time.Now())
		return err == nil && n == 1
	})
	at := time.Now()
	t.Logf("series scraped %s after the start (orders through after %s)",
		at.Sub(start).Round(time.Millisecond), flowDone.Sub(start).Round(time.Millisecond))

	t.Run("metric names are emitted by the library", func(t *testing.T) {
		emitted := registeredSeriesNames(t)
		scraped, err := p.names(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range scraped {
			emitted[n] = true
		}
		for _, q := range slices.Concat(panelQueries, alertQueries) {
			names, err := metricNames(q.expr)
			if err != nil {
				t.Errorf("%s: %v", q.where, err)
				continue
			}
			for _, n := range names {
				if !emitted[n] {
					t.Errorf("%s: metric %s is not one the library emits", q.where, n)
				}
			}
		}
	})

	t.Run("panel queries return data", func(t *testing.T) {
		for _, q := range panelQueries {
			expr, err := substitute(q.expr, d)
			if err != nil {
				t.Errorf("%s: %v", q.where, err)
				continue
			}
			n, err := p.query(ctx, expr, at)
			switch {
			case err != nil:
				t.Errorf("%s: %v\n%s", q.where, err, expr)
			case n == 0:
				t.Errorf("%s returned no data:\n%s", q.where, expr)
			}
		}
	})

	t.Run("alert expressions evaluate", func(t *testing.T) {
		for _, q := range alertQueries {
			if _, err := p.query(ctx, q.expr, at); err != nil {
				t.Errorf("%s: %v", q.where, err)
			}
		}
		// The rule manager evaluates the loaded file as it would in
		// production: every rule evaluated, none unhealthy.
		var health map[string]string
		waitFor(ctx, t, "every rule evaluated", promOut, func() bool {
			h, err := p.ruleHealth(ctx)
			health = h
			return err == nil && len(h) == len(alertQueries) && !slices.Contains(slices.Collect(maps.Values(h)), "unknown")
		})
		for name, h := range health {
			if h != "ok" {
				t.Errorf("rule %s: health %s", name, h)
			}
		}
	})

	t.Run("exemplars link to traces", func(t *testing.T) {
		ex, err := p.exemplarTraceIDs(ctx, "messaging_process_duration_seconds_bucket", flowDone.Add(-5*time.Minute), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if ex == 0 {
			t.Error("no exemplar with a trace_id on messaging_process_duration_seconds_bucket")
		}
	})
}

// prometheusBinaries returns the paths of prometheus and promtool. Without
// them the test is skipped, loudly, except under CI (CI=true), where
// .ci/run installs them and their absence is a failure.
func prometheusBinaries(t *testing.T) (prometheus, promtool string) {
	t.Helper()
	var missing []string
	prometheus, err := exec.LookPath("prometheus")
	if err != nil {
		missing = append(missing, "prometheus")
	}
	promtool, err = exec.LookPath("promtool")
	if err != nil {
		missing = append(missing, "promtool")
	}
	if missing == nil {
		return prometheus, promtool
	}
	msg := fmt.Sprintf("%s not found on PATH: the dashboard and alert rules are NOT tested against Prometheus. "+
		"Install them (Debian: apt-get install prometheus) to run this test.", strings.Join(missing, " and "))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip("SKIPPED: " + msg)
	return "", ""
}

// buildExample builds the example command into dir once.
func buildExample(ctx context.Context, t *testing.T, dir string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the example: %v", err)
	}
	bin := filepath.Join(dir, "example")
	out, err := exec.CommandContext(ctx, goBin, "build", "-o", bin, "github.com/tracebus/tracebus/example").CombinedOutput()
	if err != nil {
		t.Fatalf("go build the example: %v\n%s", err, out)
	}
	return bin
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startProcess starts a command writing to out. When ctx ends (at the
// latest when the test does) it is interrupted (the example drains and
// flushes, Prometheus shuts down), killed if it has not exited 10 s later,
// and the test's cleanup waits for it.
func startProcess(ctx context.Context, t *testing.T, out io.Writer, name string, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	// ctx ends before the cleanups run: exec interrupts the process then.
	t.Cleanup(func() { _ = cmd.Wait() })
}

// waitForServices returns the services the example serves metrics for, from
// the lines it prints: "  metrics   http://127.0.0.1:8080/metrics/billing".
func waitForServices(ctx context.Context, t *testing.T, out *lines) []string {
	t.Helper()
	waitFor(ctx, t, "the example's metrics endpoints", out, func() bool { return out.contains("asyncapi") })
	var services []string
	for _, l := range out.all() {
		f := strings.Fields(l)
		if len(f) == 2 && f[0] == "metrics" {
			if _, svc, ok := strings.Cut(f[1], "/metrics/"); ok {
				services = append(services, svc)
			}
		}
	}
	if len(services) == 0 {
		t.Fatalf("the example names no metrics endpoint:\n%s", strings.Join(out.all(), "\n"))
	}
	return services
}

// writeConfig writes a Prometheus configuration that scrapes every service
// under a job named after it, twice a second, and loads the rules.
func writeConfig(t *testing.T, path, target, rules string, services []string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: 500ms\n  scrape_timeout: 500ms\n  evaluation_interval: 500ms\n")
	fmt.Fprintf(&b, "rule_files:\n  - %q\n", rules)
	b.WriteString("scrape_configs:\n")
	for _, svc := range services {
		fmt.Fprintf(&b, "  - job_name: %q\n    metrics_path: %q\n    static_configs:\n      - targets: [%q]\n",
			svc, "/metrics/"+svc, target)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds, failing the test with out's lines when
// ctx ends first.
func waitFor(ctx context.Context, t *testing.T, what string, out *lines, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v; output:\n%s", what, ctx.Err(), strings.Join(out.all(), "\n"))
		case <-tick.C:
		}
	}
}

// lines collects a process's output, line by line, for conditions and
// failure messages.
type lines struct {
	mu      sync.Mutex
	partial []byte
	done    []string
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.done = append(l.done, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
}

func (l *lines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.done)
}

func (l *lines) contains(s string) bool {
	return slices.ContainsFunc(l.all(), func(line string) bool { return strings.Contains(line, s) })
}

// promAPI is the part of Prometheus's HTTP API the test uses.
type promAPI struct{ base string }

func (p *promAPI) ready(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/-/ready", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// call does a request against the API and decodes its data into v: a GET
// without form, a POST with it (queries can be long).
func (p *promAPI) call(ctx context.Context, path string, form url.Values, v any) error {
	method, body := http.MethodGet, io.Reader(nil)
	if form != nil {
		method, body = http.MethodPost, strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, p.base+path, body)
	if err != nil {
		return err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		Status    string          `json:"status"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return fmt.Errorf("%s: HTTP %d: %w", path, resp.StatusCode, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s: %s", path, r.ErrorType, r.Error)
	}
	return json.Unmarshal(r.Data, v)
}

// query evaluates expr at a time and returns how many series (or scalars)
// it gave.
func (p *promAPI) query(ctx context.Context, expr string, at time.Time) (int, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	form := url.Values{"query": {expr}, "time": {fmt.Sprintf("%.3f", float64(at.UnixMilli())/1000)}}
	if err := p.call(ctx, "/api/v1/query", form, &data); err != nil {
		return 0, err
	}
	if data.ResultType == "scalar" || data.ResultType == "string" {
		return 1, nil
	}
	var series []json.RawMessage
	if err := json.Unmarshal(data.Result, &series); err != nil {
		return 0, err
	}
	return len(series), nil
}

// names returns every metric name Prometheus holds.
func (p *promAPI) names(ctx context.Context) ([]string, error) {
	var names []string
	err := p.call(ctx, "/api/v1/label/__name__/values", nil, &names)
	if err == nil && len(names) == 0 {
		err = errors.New("Prometheus holds no metric names")
	}
	return names, err
}

// ruleHealth returns each loaded rule's health: ok, err or unknown (not
// evaluated yet).
func (p *promAPI) ruleHealth(ctx context.Context) (map[string]string, error) {
	var data struct {
		Groups []struct {
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := p.call(ctx, "/api/v1/rules", nil, &data); err != nil {
		return nil, err
	}
	health := map[string]string{}
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			health[r.Name] = r.Health
			if r.LastError != "" {
				health[r.Name] += ": " + r.LastError
			}
		}
	}
	return health, nil
}

// exemplarTraceIDs returns how many exemplars of the selector's series
// carry a trace_id label.
func (p *promAPI) exemplarTraceIDs(ctx context.Context, selector string, start, end time.Time) (int, error) {
	var data []struct {
		Exemplars []struct {
			Labels map[string]string `json:"labels"`
		} `json:"exemplars"`
	}
	form := url.Values{"query": {selector},
		"start": {fmt.Sprint(start.Unix())}, "end": {fmt.Sprint(end.Unix() + 1)}}
	if err := p.call(ctx, "/api/v1/query_exemplars", form, &data); err != nil {
		return 0, err
	}
	n := 0
	for _, s := range data {
		for _, e := range s.Exemplars {
			if e.Labels["trace_id"] != "" {
				n++
			}
		}
	}
	return n, nil
}
