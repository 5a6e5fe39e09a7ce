package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/middleware"
)

type namedError string

func (e namedError) Error() string     { return "named: " + string(e) }
func (e namedError) ErrorType() string { return string(e) }

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
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := middleware.ErrorType(tc.err); got != tc.want {
				t.Errorf("ErrorType(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

func ExampleErrorType() {
	err := fmt.Errorf("order 7: %w: %w", broker.ErrDecode, errors.New("unexpected end of JSON input"))
	fmt.Println(middleware.ErrorType(err))
	fmt.Println(middleware.ErrorType(errors.New("payment provider timeout")))
	// Output:
	// decode
	// _OTHER
}
