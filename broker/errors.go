package broker

import (
	"errors"
	"fmt"
	"strings"
)

// Errors of the broker. Match them with errors.Is. An option or feature a
// transport does not provide gives an error matching errors.ErrUnsupported.
var (
	// ErrClosed: the broker or transport is closed.
	ErrClosed = errors.New("tracebus: closed")
	// ErrInvalid is matched by every misuse of the API: an option value
	// out of range (a batch size below 1, a batch option on a plain
	// subscription), an empty destination, a nil handler or message, an
	// empty batch, a request without a deadline, a reply to a message
	// without a reply address, a second Start. The error's text says
	// which.
	ErrInvalid = errors.New("tracebus: invalid option")
	// ErrPermanent marks a handler error that retrying cannot fix: the
	// message goes straight to the dead-letter destination or is dropped.
	// Wrap it (fmt.Errorf("decode: %w", broker.ErrPermanent)) or use
	// Permanent.
	ErrPermanent = errors.New("tracebus: permanent failure")
)

// Permanent wraps err so that errors.Is(err, ErrPermanent) holds and the
// broker does not retry the message. Permanent(nil) returns nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (e permanentError) Error() string   { return e.err.Error() }
func (e permanentError) Unwrap() []error { return []error{e.err, ErrPermanent} }

// PanicError is the error a recovered handler panic becomes. Middleware sees
// it like any handler error; errors.As finds it.
type PanicError struct {
	// Value is what the handler panicked with.
	Value any
	// Stack is the goroutine stack at the panic.
	Stack []byte
}

// Error implements error.
func (e *PanicError) Error() string { return fmt.Sprintf("tracebus: handler panicked: %v", e.Value) }

// Unwrap returns the panic value when it is an error, so that errors.Is
// and errors.As reach it.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// BatchError reports which messages of a batch publish failed. It is
// aligned with the published messages: entry i is nil when message i was
// sent and holds its error otherwise.
type BatchError []error

// Error implements error.
func (e BatchError) Error() string {
	var b strings.Builder
	n := 0
	for i, err := range e {
		if err == nil {
			continue
		}
		if n > 0 {
			b.WriteString("; ")
		}
		n++
		fmt.Fprintf(&b, "message %d: %v", i, err)
	}
	return fmt.Sprintf("tracebus: %d of %d messages failed: %s", n, len(e), b.String())
}

// Unwrap returns the non-nil errors, so errors.Is and errors.As look at each.
func (e BatchError) Unwrap() []error {
	errs := make([]error, 0, len(e))
	for _, err := range e {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// Failed returns the indexes of the messages that failed.
func (e BatchError) Failed() []int {
	var idx []int
	for i, err := range e {
		if err != nil {
			idx = append(idx, i)
		}
	}
	return idx
}

// misuse is an error that matches ErrInvalid and says which misuse it is.
type misuse string

func (e misuse) Error() string        { return "tracebus: " + string(e) }
func (e misuse) Is(target error) bool { return target == ErrInvalid }

// The misuses of the API, each matching ErrInvalid.
var (
	errEmptyDestination error = misuse("empty destination")
	errNilHandler       error = misuse("nil handler")
	errNilMessage       error = misuse("nil message")
	errEmptyBatch       error = misuse("empty batch")
	errAlreadyStarted   error = misuse("already started")
	errNoDeadline       error = misuse("request context has no deadline")
	errNoReplyAddress   error = misuse("message has no reply address")
)

func optionError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}
