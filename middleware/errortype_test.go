package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/middleware"
	"github.com/tracebus/tracebus/testutil"
)

type namedError string

func (e namedError) Error() string     { return "named: " + string(e) }
func (e namedError) ErrorType() string { return string(e) }

// ValueError is a named error type of the kind a service defines: its
// error.type is its canonical type name, as FastStream records an
// exception's class.
type ValueError struct{ Field string }

func (e ValueError) Error() string { return "invalid " + e.Field }

// pqError stands in for a driver's pointer error type such as *pq.Error.
type pqError struct{ Code string }

func (e *pqError) Error() string { return "pq: " + e.Code }

// opError is a named wrapper, like *net.OpError or *url.Error.
type opError struct{ Err error }

func (e *opError) Error() string { return "op: " + e.Err.Error() }
func (e *opError) Unwrap() error { return e.Err }

const testPkg = "github.com/tracebus/tracebus/middleware_test"

func TestErrorType(t *testing.T) {
	plain := errors.New("payment provider timeout")
	dialCtx, cancel := context.WithCancel(context.Background())
	cancel()
	_, dialErr := (&net.Dialer{}).DialContext(dialCtx, "tcp", "127.0.0.1:1")
	deadline := time.Now().Add(-time.Second)
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	if err := c1.SetReadDeadline(deadline); err != nil {
		t.Fatal(err)
	}
	_, readErr := c1.Read(make([]byte, 1))

	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, "_OTHER"},
		{"plain text mentioning a timeout", plain, "_OTHER"},
		{"wrapped plain", fmt.Errorf("charge: %w", plain), "_OTHER"},
		{"panic", &broker.PanicError{Value: "boom"}, "panic"},
		{"panic with an error value", &broker.PanicError{Value: context.DeadlineExceeded}, "panic"},
		{"decode", fmt.Errorf("order 7: %w: %w", broker.ErrDecode, plain), "decode"},
		{"validation", fmt.Errorf("order 7: %w", broker.ErrValidation), "validation"},
		{"decode marked permanent as well", broker.Permanent(fmt.Errorf("%w", broker.ErrDecode)), "decode"},
		{"typed layer decode error", fmt.Errorf("handle: %w", &broker.DecodeError{ContentType: "application/json", Err: plain}), "decode"},
		{"typed layer validation error", &broker.ValidationError{Err: errors.New("amount must be positive")}, "validation"},
		{"permanent", broker.Permanent(plain), "permanent"},
		{"permanent by wrapping", fmt.Errorf("bad order: %w", broker.ErrPermanent), "permanent"},
		{"deadline", fmt.Errorf("charge: %w", context.DeadlineExceeded), "timeout"},
		{"os deadline", os.ErrDeadlineExceeded, "timeout"},
		{"net read past its deadline", readErr, "timeout"},
		{"timeout beats permanent", broker.Permanent(context.DeadlineExceeded), "timeout"},
		{"canceled", context.Canceled, "canceled"},
		{"dial with a cancelled ctx", dialErr, "canceled"},
		{"closed", fmt.Errorf("kafka: publish: %w", broker.ErrClosed), "closed"},
		{"names itself", namedError("card_declined"), "card_declined"},
		{"names itself, wrapped and permanent", broker.Permanent(fmt.Errorf("x: %w", namedError("card_declined"))), "card_declined"},
		{"empty name falls through", fmt.Errorf("%w: %w", namedError(""), context.Canceled), "canceled"},
		{"batch: first failure", broker.BatchError{nil, fmt.Errorf("%w", broker.ErrValidation), plain}, "validation"},
		{"batch wrapped", fmt.Errorf("publish: %w", broker.BatchError{plain, broker.ErrClosed}), "_OTHER"},
		{"errors.Join of anonymous errors", errors.Join(plain, errors.New("other")), "_OTHER"},
		{"fmt.Errorf with a nil cause", fmt.Errorf("x: %w", nil), "_OTHER"},
		{"fmt.Errorf with two anonymous causes", fmt.Errorf("%w: %w", plain, plain), "_OTHER"},
		{"named value type", ValueError{"amount"}, testPkg + ".ValueError"},
		{"named pointer type", &pqError{"23505"}, "*middleware_test.pqError"},
		{"standard library pointer type", &strconv.NumError{Func: "Atoi", Num: "x", Err: strconv.ErrSyntax}, "*strconv.NumError"},
		{"named, wrapped twice", fmt.Errorf("a: %w", fmt.Errorf("b: %w", ValueError{"amount"})), testPkg + ".ValueError"},
		{"named after an anonymous cause in a multi-%w", fmt.Errorf("%w: %w", plain, &pqError{"23505"}), "*middleware_test.pqError"},
		{"named inside errors.Join", errors.Join(plain, fmt.Errorf("x: %w", ValueError{"amount"})), testPkg + ".ValueError"},
		{"first named of two wins", errors.Join(&pqError{"1"}, ValueError{"amount"}), "*middleware_test.pqError"},
		{"named wrapper is the cause", &opError{ValueError{"amount"}}, "*middleware_test.opError"},
		{"named wrapper around an anonymous error", fmt.Errorf("dial: %w", &opError{plain}), "*middleware_test.opError"},
		{"named, marked permanent", broker.Permanent(fmt.Errorf("x: %w", ValueError{"amount"})), testPkg + ".ValueError"},
		{"named, retried later", broker.RetryAfter(ValueError{"amount"}, time.Second), testPkg + ".ValueError"},
		{"anonymous, retried later", broker.RetryAfter(plain, time.Second), "_OTHER"},
		{"recognised cause beats a named wrapper", &opError{context.DeadlineExceeded}, "timeout"},
		{"named, in a batch", broker.BatchError{nil, ValueError{"amount"}}, testPkg + ".ValueError"},
		{"panic with a named error value", &broker.PanicError{Value: ValueError{"amount"}}, "panic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := middleware.ErrorType(tc.err); got != tc.want {
				t.Errorf("ErrorType(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

// The named type semconv.ErrorType gives is the one ErrorType gives, so
// that error.type agrees with other OpenTelemetry instrumentation in the
// same process.
func TestErrorTypeAgreesWithSemconv(t *testing.T) {
	for _, err := range []error{ValueError{"amount"}, &pqError{"23505"}, &opError{errors.New("x")}, &strconv.NumError{Err: strconv.ErrRange}} {
		want := semconv.ErrorType(err).Value.AsString()
		if got := middleware.ErrorType(fmt.Errorf("wrapped: %w", err)); got != want {
			t.Errorf("ErrorType(%T) = %q, semconv.ErrorType = %q", err, got, want)
		}
	}
}

// A failing call costs no allocation once its type has been seen.
func TestErrorTypeNamedDoesNotAllocate(t *testing.T) {
	err := fmt.Errorf("charge: %w", &pqError{"23505"})
	middleware.ErrorType(err)
	if n := testing.AllocsPerRun(100, func() { middleware.ErrorType(err) }); n != 0 {
		t.Errorf("ErrorType of a named cause allocates %v times per call", n)
	}
}

func ExampleErrorType() {
	err := fmt.Errorf("order 7: %w: %w", broker.ErrDecode, errors.New("unexpected end of JSON input"))
	fmt.Println(middleware.ErrorType(err))
	fmt.Println(middleware.ErrorType(errors.New("payment provider timeout")))
	_, err = strconv.Atoi("seven")
	fmt.Println(middleware.ErrorType(fmt.Errorf("order 7: %w", err)))
	// Output:
	// decode
	// _OTHER
	// *strconv.NumError
}

// FastStream's error-metrics expectation, ported: a handler that fails
// with a named error type records that type as error.type on its process
// span and on the messaging.process.duration and
// messaging.client.consumed.messages points, so failures split by cause on
// a dashboard. An anonymous error on the same subscription stays _OTHER.
func TestErrorTypeOfNamedHandlerErrorOnSpanAndMetrics(t *testing.T) {
	tel, rec := newTel(t)
	b := broker.New(testutil.Memory(t), broker.WithMiddleware(tel))
	done := make(chan struct{}, 2)
	err := b.Subscribe("orders", func(_ context.Context, m *broker.Message) error {
		defer func() { done <- struct{}{} }()
		if string(m.Body) == "named" {
			return fmt.Errorf("charge order: %w", ValueError{"amount"})
		}
		return errors.New("payment provider said no")
	}, broker.MaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"named", "anonymous"} {
		if err := b.Publish(t.Context(), &broker.Message{Destination: "orders", Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("handler not called for %q", body)
		}
	}
	if err := b.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	want := testPkg + ".ValueError"
	types := map[string]int{}
	for _, s := range rec.SpansByName("process orders") {
		types[attrMap(s.Attributes())[semconv.ErrorTypeKey].AsString()]++
	}
	if types[want] != 1 || types["_OTHER"] != 1 || len(types) != 2 {
		t.Errorf("process spans' error.type %v, want one %s and one _OTHER\n%s", types, want, rec.Tree())
	}
	for _, name := range []string{"messaging.process.duration", "messaging.client.consumed.messages"} {
		m, found := rec.Metric(t, name)
		if !found {
			t.Fatalf("no metric %s", name)
		}
		byType := map[string]int64{}
		switch d := m.Data.(type) {
		case metricdata.Histogram[float64]:
			for _, dp := range d.DataPoints {
				v, _ := dp.Attributes.Value(semconv.ErrorTypeKey)
				byType[v.AsString()] += int64(dp.Count)
			}
		case metricdata.Sum[int64]:
			for _, dp := range d.DataPoints {
				v, _ := dp.Attributes.Value(semconv.ErrorTypeKey)
				byType[v.AsString()] += dp.Value
			}
		}
		if byType[want] != 1 || byType["_OTHER"] != 1 {
			t.Errorf("%s by error.type %v, want 1 for %s and 1 for _OTHER", name, byType, want)
		}
	}
}
