package conformance

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
)

// spanCounter is a span processor that only counts ended spans by name
// prefix ("send", "process", ...) and error status, so that a load run of a
// million messages does not keep a million spans.
type spanCounter struct {
	mu     sync.Mutex
	byKind map[string]int
	errors map[string]int
}

func newSpanCounter() *spanCounter {
	return &spanCounter{byKind: map[string]int{}, errors: map[string]int{}}
}

func (c *spanCounter) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (c *spanCounter) OnEnd(s sdktrace.ReadOnlySpan) {
	kind, _, _ := strings.Cut(s.Name(), " ")
	c.mu.Lock()
	c.byKind[kind]++
	if s.Status().Code == codes.Error {
		c.errors[kind]++
	}
	c.mu.Unlock()
}
func (c *spanCounter) Shutdown(context.Context) error   { return nil }
func (c *spanCounter) ForceFlush(context.Context) error { return nil }

func (c *spanCounter) counts(kind string) (all, failed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byKind[kind], c.errors[kind]
}

// TestLoad publishes n messages (in batches) through a broker with the
// Telemetry middleware and consumes them with a handler of concurrency 8.
//
//   - Clean: every message is processed exactly once; the send and process
//     span counts equal n.
//   - Failing: 10 % of the messages fail their first attempt, 1 % panic on
//     every attempt and go to a dead-letter destination after 3 attempts.
//     Every message is acked or dead-lettered, the counts reconcile exactly,
//     and the process spans with status Error equal the failed attempts.
//
// Transports use n = Scale(20_000, 1_000_000) for their load tests.
func TestLoad(t *testing.T, s Suite, n int) {
	t.Run("Clean", func(t *testing.T) { testLoad(t, s, n, false) })
	t.Run("Failing", func(t *testing.T) { testLoad(t, s, n, true) })
}

func testLoad(t *testing.T, s Suite, n int, failing bool) {
	dest := s.Destination(t)
	dead := s.Destination(t)
	spans := newSpanCounter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	rec := testutil.NewRecorder(t) // metrics only
	tel := middleware.NewTelemetry(middleware.WithTracerProvider(tp), middleware.WithMeterProvider(rec.MeterProvider))
	b := s.Broker(t, broker.WithMiddleware(tel), broker.WithLogger(discardLogger()))

	var (
		mu       sync.Mutex
		attempts = make([]int32, n)
		handled  = make([]int32, n) // successful attempts
		deadSeen = make([]int32, n)
		failed   atomic.Int64 // attempts that returned an error or panicked
		done     atomic.Int64 // messages acked or dead-lettered
	)
	opts := s.Options(broker.Concurrency(8))
	if failing {
		opts = append(opts, broker.MaxAttempts(3), broker.RetryBackoff(broker.ConstantBackoff(time.Millisecond)), broker.DeadLetter(dead))
	}
	if err := b.Subscribe(dest, func(_ context.Context, m *broker.Message) error {
		i, err := strconv.Atoi(string(m.Body))
		if err != nil || i < 0 || i >= n {
			return fmt.Errorf("%w: unexpected body", broker.ErrPermanent)
		}
		mu.Lock()
		attempts[i]++
		a := attempts[i]
		mu.Unlock()
		if failing {
			switch {
			case i%100 == 0:
				failed.Add(1)
				panic("load: handler bug")
			case i%10 == 1 && a == 1:
				failed.Add(1)
				return fmt.Errorf("load: transient failure of %d", i)
			}
		}
		mu.Lock()
		handled[i]++
		mu.Unlock()
		done.Add(1)
		return nil
	}, opts...); err != nil {
		t.Fatal(err)
	}
	if failing {
		if err := b.Subscribe(dead, func(_ context.Context, m *broker.Message) error {
			i, err := strconv.Atoi(string(m.Body))
			if err == nil && i >= 0 && i < n {
				mu.Lock()
				deadSeen[i]++
				mu.Unlock()
				done.Add(1)
			}
			return nil
		}, s.Options()...); err != nil {
			t.Fatal(err)
		}
	}
	s.Start(t, b)

	start := time.Now()
	const chunk = 500
	for from := 0; from < n; from += chunk {
		msgs := make([]*broker.Message, 0, chunk)
		for i := from; i < min(n, from+chunk); i++ {
			msgs = append(msgs, &broker.Message{Destination: dest, ID: dest + "/" + strconv.Itoa(i), Body: []byte(strconv.Itoa(i))})
		}
		if err := b.PublishBatch(context.Background(), msgs); err != nil {
			t.Fatalf("publish batch at %d: %v", from, err)
		}
	}
	wait := s.Wait() + time.Duration(n/1000)*time.Second
	testutil.Eventually(t, wait, func() bool { return done.Load() >= int64(n) }, fmt.Sprintf("%d messages acked or dead-lettered", n))
	elapsed := time.Since(start)

	// Every attempt's process span (and the dead letters') ends right
	// after its handler returns.
	wantErrors := int(failed.Load())
	// The successes, the failed attempts, and the dead-letter
	// subscription's deliveries of the messages that never succeeded.
	wantProcess := n + wantErrors
	// A dead letter's send span can end after the dead-letter
	// subscription's process span: wait for both kinds.
	wantSendSpans := (n + chunk - 1) / chunk
	if failing {
		wantSendSpans += (n + 99) / 100 // one single publish per dead letter
	}
	testutil.Eventually(t, s.Wait(), func() bool {
		process, _ := spans.counts("process")
		send, _ := spans.counts("send")
		return process >= wantProcess && send >= wantSendSpans
	}, fmt.Sprintf("spans ended: want %d process (failed attempts %d) and %d send", wantProcess, wantErrors, wantSendSpans))

	mu.Lock()
	defer mu.Unlock()
	var deadCount, retried int
	for i := range n {
		switch {
		case failing && i%100 == 0:
			if handled[i] != 0 || deadSeen[i] != 1 || attempts[i] != 3 {
				t.Errorf("message %d: handled %d, dead-lettered %d, attempts %d; want 0, 1, 3", i, handled[i], deadSeen[i], attempts[i])
			}
			deadCount++
		case failing && i%10 == 1:
			if handled[i] != 1 || attempts[i] != 2 {
				t.Errorf("message %d: handled %d in %d attempts, want once in 2", i, handled[i], attempts[i])
			}
			retried++
		default:
			if handled[i] != 1 || attempts[i] != 1 {
				t.Errorf("message %d: handled %d in %d attempts, want once in 1", i, handled[i], attempts[i])
			}
		}
	}
	send, sendErrs := spans.counts("send")
	process, processErrs := spans.counts("process")
	wantSend := n / chunk
	if n%chunk != 0 {
		wantSend++
	}
	if failing {
		wantSend += deadCount // each dead letter is a single publish
	}
	if send != wantSend || sendErrs != 0 {
		t.Errorf("send spans %d (%d failed), want %d (0 failed)", send, sendErrs, wantSend)
	}
	if creates, _ := spans.counts("create"); creates != n {
		t.Errorf("create spans %d, want %d", creates, n)
	}
	if process != wantProcess || processErrs != wantErrors {
		t.Errorf("process spans %d (%d failed), want %d (%d failed: the failed attempts)", process, processErrs, wantProcess, wantErrors)
	}
	t.Logf("%d messages in %v (%.0f/s); %d failed attempts, %d retried, %d dead-lettered",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), wantErrors, retried, deadCount)
}

// discardLogger is a logger for runs that fail handlers on purpose.
func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
