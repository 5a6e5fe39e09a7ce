package exporters_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"github.com/tracebus/tracebus/exporters"
)

// TestDeadCollector points OTLP at an address nothing listens on. Ending
// spans must not wait for the collector (the batch queue drops instead),
// Shutdown must return by its deadline and say what it lost, and nothing
// may keep running afterwards.
//
// The OTLP timeout is raised to a minute, so an exporter in the path of
// span.End or a Shutdown that waited for the exporters' own timeouts would
// take a minute per export, not the second the checks allow.
func TestDeadCollector(t *testing.T) {
	for _, tc := range []struct {
		name     string
		protocol exporters.Protocol
		// collector returns the endpoint and a function that stops it.
		collector func(t *testing.T) (string, func())
	}{
		{"grpc, nothing listening", exporters.ProtocolGRPC, func(t *testing.T) (string, func()) { return "http://" + deadAddress(t), func() {} }},
		{"http, nothing listening", exporters.ProtocolHTTP, func(t *testing.T) (string, func()) { return "http://" + deadAddress(t), func() {} }},
		{"grpc, never answering", exporters.ProtocolGRPC, func(t *testing.T) (string, func()) { return startHangingGRPC(t) }},
		{"http, never answering", exporters.ProtocolHTTP, startHangingHTTP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "60000")
			t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "10") // export attempts start at once
			endpoint, stop := tc.collector(t)
			defer stop()

			ctx := context.Background()
			p, err := exporters.Setup(ctx, exporters.WithOTLP(tc.protocol, endpoint), exporters.WithoutGlobal())
			if err != nil {
				t.Fatal(err)
			}
			tracer := p.TracerProvider.Tracer("dead-collector")
			sent, err := p.MeterProvider.Meter("dead-collector").Int64Counter("messages")
			if err != nil {
				t.Fatal(err)
			}

			// Five times the default queue of 2048: a blocking queue would
			// stall on the first export.
			const spans = 5 * 2048
			ended := make(chan struct{})
			go func() {
				defer close(ended)
				for range spans {
					_, span := tracer.Start(ctx, "send orders")
					span.End()
					sent.Add(ctx, 1)
				}
			}()
			select {
			case <-ended:
			case <-time.After(time.Minute):
				t.Fatal("ending spans blocked on a dead collector")
			}

			const budget = time.Second
			sctx, cancel := context.WithTimeout(ctx, budget)
			defer cancel()
			start := time.Now()
			err = p.Shutdown(sctx)
			took := time.Since(start)
			// Slack for a loaded machine, far below the minute an export
			// would take without the deadline.
			if took > budget+20*time.Second {
				t.Errorf("Shutdown took %v with a %v deadline", took, budget)
			}
			if !errors.Is(err, exporters.ErrNotExported) {
				t.Fatalf("Shutdown error %v does not report lost spans", err)
			}
			var lost *exporters.NotExportedError
			if !errors.As(err, &lost) || lost.Lost != spans || lost.Ended != spans || lost.Err == nil {
				t.Errorf("NotExportedError = %+v, want all %d spans lost with the export error", lost, spans)
			}
			msg := err.Error()
			if want := fmt.Sprintf("%d of %d spans not exported", spans, spans); !strings.Contains(msg, want) {
				t.Errorf("Shutdown error %q lacks %q", msg, want)
			}
			if !strings.Contains(msg, "meter provider") {
				t.Errorf("Shutdown error %q does not report the metrics it could not flush", msg)
			}
			t.Logf("Shutdown after %v: %v", took.Round(time.Millisecond), err)

			if again := p.Shutdown(ctx); again == nil || again.Error() != msg {
				t.Errorf("second Shutdown = %v, want the first result", again)
			}
		})
	}
}

// A hanging collector accepts every export and answers none until its
// caller gives up.
type hangingTraces struct {
	coltracepb.UnimplementedTraceServiceServer
}

func (hangingTraces) Export(ctx context.Context, _ *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

type hangingMetrics struct {
	colmetricpb.UnimplementedMetricsServiceServer
}

func (hangingMetrics) Export(ctx context.Context, _ *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func startHangingGRPC(t testing.TB) (string, func()) {
	t.Helper()
	lis, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, hangingTraces{})
	colmetricpb.RegisterMetricsServiceServer(srv, hangingMetrics{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	return "http://" + lis.Addr().String(), func() {
		srv.Stop()
		<-done
	}
}

func startHangingHTTP(t *testing.T) (string, func()) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		// The server notices a client hanging up only once the body has
		// been read.
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	}))
	return srv.URL, srv.Close
}
