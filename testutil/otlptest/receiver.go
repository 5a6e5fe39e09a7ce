package otlptest

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Signal is an OTLP signal.
type Signal string

// The OTLP signals, spelled as in the HTTP paths.
const (
	Traces  Signal = "traces"
	Metrics Signal = "metrics"
	Logs    Signal = "logs"
)

// An Option configures a Receiver.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct{ refuse map[Signal]bool }

// Refuse makes the receiver refuse the signals, as a backend that does not
// accept them does: 404 Not Found over HTTP, Unimplemented over gRPC.
func Refuse(signals ...Signal) Option {
	return optionFunc(func(c *config) {
		for _, s := range signals {
			c.refuse[s] = true
		}
	})
}

// Receiver keeps what it was sent. Its methods are safe for concurrent use.
type Receiver struct {
	// URL is the receiver's base URL, to give as an OTLP endpoint:
	// http://127.0.0.1:port.
	URL string

	cfg     config
	mu      sync.Mutex
	spans   []Span
	metrics []Metric
	logs    []LogRecord
	refused map[Signal]int
}

// Span is a received span with its resource attributes.
type Span struct {
	*tracepb.Span
	Resource map[string]string
}

// Metric is the name of a received metric with its resource attributes.
type Metric struct {
	Name     string
	Resource map[string]string
}

// LogRecord is a received log record with its resource attributes.
type LogRecord struct {
	*logspb.LogRecord
	Resource map[string]string
}

func newReceiver(opts []Option) *Receiver {
	r := &Receiver{cfg: config{refuse: map[Signal]bool{}}, refused: map[Signal]int{}}
	for _, o := range opts {
		o.apply(&r.cfg)
	}
	return r
}

// AttrMap returns attributes as a map from key to value: string values as
// they are, others as their protobuf text.
func AttrMap(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		if s, ok := v.GetValue().(*commonpb.AnyValue_StringValue); ok {
			m[kv.GetKey()] = s.StringValue
			continue
		}
		m[kv.GetKey()] = v.String()
	}
	return m
}

func (r *Receiver) addTraces(req *coltracepb.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		res := AttrMap(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, Span{Span: s, Resource: res})
			}
		}
	}
}

func (r *Receiver) addMetrics(req *colmetricpb.ExportMetricsServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rm := range req.GetResourceMetrics() {
		res := AttrMap(rm.GetResource().GetAttributes())
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				r.metrics = append(r.metrics, Metric{Name: m.GetName(), Resource: res})
			}
		}
	}
}

func (r *Receiver) addLogs(req *collogspb.ExportLogsServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rl := range req.GetResourceLogs() {
		res := AttrMap(rl.GetResource().GetAttributes())
		for _, sl := range rl.GetScopeLogs() {
			for _, l := range sl.GetLogRecords() {
				r.logs = append(r.logs, LogRecord{LogRecord: l, Resource: res})
			}
		}
	}
}

// refuses reports whether s is refused, counting the refusal.
func (r *Receiver) refuses(s Signal) bool {
	if !r.cfg.refuse[s] {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refused[s]++
	return true
}

// Spans returns the spans received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

// Span returns the first received span with the given name.
func (r *Receiver) Span(name string) (Span, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := slices.IndexFunc(r.spans, func(s Span) bool { return s.GetName() == name })
	if i < 0 {
		return Span{}, false
	}
	return r.spans[i], true
}

// Metric returns the first received metric with the given name.
func (r *Receiver) Metric(name string) (Metric, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := slices.IndexFunc(r.metrics, func(m Metric) bool { return m.Name == name })
	if i < 0 {
		return Metric{}, false
	}
	return r.metrics[i], true
}

// Logs returns the log records received so far.
func (r *Receiver) Logs() []LogRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.logs)
}

// Refused returns how many export requests of signal s were refused.
func (r *Receiver) Refused(s Signal) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refused[s]
}

// StartHTTP serves OTLP/HTTP (binary protobuf, optionally gzip) on a
// loopback port until the test ends.
func StartHTTP(t testing.TB, opts ...Option) *Receiver {
	t.Helper()
	r := newReceiver(opts)
	mux := http.NewServeMux()
	mux.Handle("POST /v1/traces", export(r, Traces, r.addTraces, &coltracepb.ExportTraceServiceResponse{}))
	mux.Handle("POST /v1/metrics", export(r, Metrics, r.addMetrics, &colmetricpb.ExportMetricsServiceResponse{}))
	mux.Handle("POST /v1/logs", export(r, Logs, r.addLogs, &collogspb.ExportLogsServiceResponse{}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// export handles the OTLP/HTTP requests of signal s: 404 when refused,
// otherwise the request decoded into a new Req, kept by add, answered with
// resp.
func export[Req any, PReq interface {
	*Req
	proto.Message
}](r *Receiver, s Signal, add func(PReq), resp proto.Message) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.refuses(s) {
			http.NotFound(w, req)
			return
		}
		msg := PReq(new(Req))
		if !decode(w, req, msg) {
			return
		}
		add(msg)
		write(w, resp)
	})
}

func decode(w http.ResponseWriter, req *http.Request, msg proto.Message) bool {
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		http.Error(w, "content type "+ct, http.StatusUnsupportedMediaType)
		return false
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return false
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err == nil {
		err = proto.Unmarshal(raw, msg)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func write(w http.ResponseWriter, msg proto.Message) {
	raw, err := proto.Marshal(msg)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = io.Copy(w, bytes.NewReader(raw))
}

type grpcTraces struct {
	coltracepb.UnimplementedTraceServiceServer
	r *Receiver
}

func (g grpcTraces) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	g.r.addTraces(req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

type grpcMetrics struct {
	colmetricpb.UnimplementedMetricsServiceServer
	r *Receiver
}

func (g grpcMetrics) Export(_ context.Context, req *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
	g.r.addMetrics(req)
	return &colmetricpb.ExportMetricsServiceResponse{}, nil
}

type grpcLogs struct {
	collogspb.UnimplementedLogsServiceServer
	r *Receiver
}

func (g grpcLogs) Export(_ context.Context, req *collogspb.ExportLogsServiceRequest) (*collogspb.ExportLogsServiceResponse, error) {
	g.r.addLogs(req)
	return &collogspb.ExportLogsServiceResponse{}, nil
}

// StartGRPC serves OTLP/gRPC on a loopback port until the test ends. A
// refused signal's service is not registered, so calls to it fail with
// Unimplemented (and are not counted by Refused).
func StartGRPC(t testing.TB, opts ...Option) *Receiver {
	t.Helper()
	r := newReceiver(opts)
	lis, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	if !r.cfg.refuse[Traces] {
		coltracepb.RegisterTraceServiceServer(srv, grpcTraces{r: r})
	}
	if !r.cfg.refuse[Metrics] {
		colmetricpb.RegisterMetricsServiceServer(srv, grpcMetrics{r: r})
	}
	if !r.cfg.refuse[Logs] {
		collogspb.RegisterLogsServiceServer(srv, grpcLogs{r: r})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	r.URL = "http://" + lis.Addr().String()
	return r
}
