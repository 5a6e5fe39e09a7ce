package broker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/memory"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestWithErrorText checks that the hook replaces a handler's error text in
// log records, in the dead-letter header and in the status of process
// spans, where by default the text (here quoting the body) would leave the
// process; the error still matches what the handler returned.
func TestWithErrorText(t *testing.T) {
	var logs testutil.LogBuffer
	errCard := errors.New("card declined")
	tr, err := memory.New()
	if err != nil {
		t.Fatal(err)
	}
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	var matched atomic.Int32
	seen := driver.MiddlewareFuncs{Consume: func(next driver.ConsumeFunc) driver.ConsumeFunc {
		return func(ctx context.Context, op driver.Operation, msgs []*broker.Message) error {
			err := next(ctx, op, msgs)
			if errors.Is(err, errCard) {
				matched.Add(1)
			}
			return err
		}
	}}
	b := broker.New(tr,
		broker.WithMiddleware(middleware.NewTelemetry(middleware.WithTracerProvider(tp)), seen),
		broker.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))),
		broker.WithErrorText(func(err error) string {
			if errors.Is(err, errCard) {
				return "redacted: card declined"
			}
			return "redacted"
		}))
	if err := b.Subscribe("payments", func(_ context.Context, m *broker.Message) error {
		return errors.Join(errCard, errors.New("body was "+string(m.Body)))
	}, broker.MaxAttempts(2), broker.RetryBackoff(broker.ConstantBackoff(time.Millisecond)), broker.DeadLetter("payments.dead")); err != nil {
		t.Fatal(err)
	}
	dead := make(chan string, 1)
	if err := b.Subscribe("payments.dead", func(_ context.Context, m *broker.Message) error {
		dead <- m.Headers.Get(broker.HeaderDeadLetterError)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	if err := b.Publish(ctx, &broker.Message{Destination: "payments", Body: []byte("4111-1111")}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-dead:
		if strings.Contains(got, "4111") || !strings.HasPrefix(got, "redacted: ") {
			t.Errorf("dead-letter error header %q, want the hook's text", got)
		}
	case <-time.After(time.Minute):
		t.Fatal("no dead letter")
	}
	var failed int
	for _, s := range spans.Ended() {
		if s.Name() != "process payments" {
			continue
		}
		failed++
		if st := s.Status(); st.Code != codes.Error || !strings.HasPrefix(st.Description, "redacted: ") {
			t.Errorf("process span status %v %q, want Error with the hook's text", st.Code, st.Description)
		}
	}
	if failed != 2 || matched.Load() != 2 {
		t.Errorf("%d failed process spans, %d errors matching the handler's; want 2 and 2", failed, matched.Load())
	}
	records := logs.Records(t)
	if len(records) == 0 {
		t.Fatal("no log records")
	}
	for _, r := range records {
		text, _ := r["error"].(string)
		if strings.Contains(fmt.Sprint(r), "4111") || !strings.HasPrefix(text, "redacted") {
			t.Errorf("log record %v: want the hook's error text and no body", r)
		}
	}
}
