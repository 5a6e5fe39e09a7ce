package middleware

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/tracebus/tracebus/broker"
)

// Values of error.type that Telemetry records for the causes it
// recognises. They are few and stable, so that dashboards and alerts can
// rely on them and a Prometheus label stays low-cardinality.
const (
	// errorTypePanic: a handler panicked (broker.PanicError).
	errorTypePanic = "panic"
	// errorTypeTimeout: a deadline passed (context.DeadlineExceeded,
	// os.ErrDeadlineExceeded, or an error whose Timeout method reports
	// true, as net.Error does).
	errorTypeTimeout = "timeout"
	// errorTypeCanceled: the work was cancelled (context.Canceled).
	errorTypeCanceled = "canceled"
	// errorTypeDecode: the message body could not be decoded
	// (broker.DecodeError, or an error wrapping broker.ErrDecode).
	errorTypeDecode = "decode"
	// errorTypeValidation: the message decoded but is not valid
	// (broker.ValidationError, or an error wrapping broker.ErrValidation).
	errorTypeValidation = "validation"
	// errorTypePermanent: the error was marked permanent
	// (broker.ErrPermanent), is none of the above and has no named error
	// type in its chain.
	errorTypePermanent = "permanent"
	// errorTypeClosed: the broker or transport was closed (broker.ErrClosed).
	errorTypeClosed = "closed"
	// errorTypeOther: none of the above and no named error type in the
	// chain (errors.New, fmt.Errorf), as semconv spells it.
	errorTypeOther = "_OTHER"
)

// ErrorType returns the error.type Telemetry records for err, following
// the semantic conventions. In order:
//
//   - the first error in err's chain that is a broker.PanicError ("panic"),
//     a broker.ReplyError (its Type) or has a method ErrorType() string
//     that returns a non-empty value (it names itself; a message no handler
//     of a filtered subscription takes is "unmatched");
//   - a recognised cause gives one of "decode", "validation", "timeout",
//     "canceled", "closed", checked in that order;
//   - otherwise the first named error type in the chain gives its type name,
//     exactly as otel-go's semconv.ErrorType spells it: the package path and
//     name for a named type ("github.com/acme/billing.ValueError"), the Go
//     spelling for a pointer to one ("*pq.Error", "*json.SyntaxError");
//   - otherwise "permanent" when the error was marked permanent;
//   - otherwise "_OTHER", as semconv spells it.
//
// The chain is walked depth first through Unwrap() error and
// Unwrap() []error. The anonymous errors of the standard library
// (errors.New, fmt.Errorf, errors.Join) and the broker's own markers
// (broker.Permanent, broker.RetryAfter) are looked through, never named:
// "payment provider timeout" from errors.New is "_OTHER", and so is
// fmt.Errorf("charge: %w", it), but fmt.Errorf("charge: %w", &pq.Error{})
// is "*pq.Error". A named error's type is a small, fixed set per program,
// so the label stays low-cardinality; its message is never used. For a
// broker.BatchError it is the type of the first failed message.
func ErrorType(err error) string {
	if be, ok := errors.AsType[broker.BatchError](err); ok {
		for _, e := range be {
			if e != nil {
				err = e
				break
			}
		}
	}
	if s := selfNamed(err, 0); s != "" {
		return s
	}
	switch {
	case err == nil:
		return errorTypeOther
	case errors.Is(err, broker.ErrDecode):
		return errorTypeDecode
	case errors.Is(err, broker.ErrValidation):
		return errorTypeValidation
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		isTimeout(err):
		return errorTypeTimeout
	case errors.Is(err, context.Canceled):
		return errorTypeCanceled
	case errors.Is(err, broker.ErrClosed):
		return errorTypeClosed
	}
	if cause := namedCause(err, 0); cause != nil {
		return typeName(cause)
	}
	if errors.Is(err, broker.ErrPermanent) {
		return errorTypePermanent
	}
	return errorTypeOther
}

// isTimeout reports whether an error in err's chain has a Timeout method
// that reports true, as net.Error does.
func isTimeout(err error) bool {
	t, ok := errors.AsType[interface {
		error
		Timeout() bool
	}](err)
	return ok && t.Timeout()
}

// anonymousErrors are the error types that say nothing about the cause:
// the standard library's errors.New, fmt.Errorf (one %w, several %w) and
// errors.Join, and the broker's retry-policy markers. They are looked
// through, and a chain of only these is errorTypeOther, as semconv.ErrorType
// would otherwise name them "*errors.errorString" or "*fmt.wrapErrors".
var anonymousErrors = func() map[reflect.Type]bool {
	leaf := errors.New("x")
	m := make(map[reflect.Type]bool)
	for _, e := range []error{
		leaf,
		fmt.Errorf("%w", leaf),
		fmt.Errorf("%w %w", leaf, leaf),
		errors.Join(leaf),
		broker.Permanent(leaf),
		broker.RetryAfter(leaf, 0),
	} {
		m[reflect.TypeOf(e)] = true
	}
	return m
}()

// maxCauseDepth bounds the walk: the types it descends through are the
// anonymous ones above, which cannot form a cycle, but a chain built by a
// program (a join of joins) could be deep.
const maxCauseDepth = 64

// namedCause returns the first error in err's chain, depth first, whose
// type is not anonymous, or nil.
// selfNamed is the error.type of the first error in err's chain that
// names itself: a handler's panic, an error reply (the type the replier
// sent) or an error with a non-empty ErrorType() string; "" when none does.
func selfNamed(err error, depth int) string {
	if err == nil || depth > maxCauseDepth {
		return ""
	}
	switch e := err.(type) {
	case *broker.PanicError:
		return errorTypePanic
	case *broker.ReplyError:
		if e.Type != "" {
			return e.Type
		}
	case interface{ ErrorType() string }:
		if s := e.ErrorType(); s != "" {
			return s
		}
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return selfNamed(u.Unwrap(), depth+1)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if s := selfNamed(e, depth+1); s != "" {
				return s
			}
		}
	}
	return ""
}

func namedCause(err error, depth int) error {
	if err == nil || depth > maxCauseDepth {
		return nil
	}
	if !anonymousErrors[reflect.TypeOf(err)] {
		return err
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return namedCause(u.Unwrap(), depth+1)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if c := namedCause(e, depth+1); c != nil {
				return c
			}
		}
	}
	return nil
}

// typeNames caches the name of each error type seen: semconv.ErrorType
// builds the name with reflection and string concatenation, which
// allocates on every call.
var typeNames sync.Map // reflect.Type -> string

// typeName is otel-go's semconv.ErrorType value for a named cause. By the
// time it is asked, no error in the chain names itself with a non-empty
// ErrorType(), so that value depends on the type alone and can be cached.
func typeName(cause error) string {
	t := reflect.TypeOf(cause)
	if s, ok := typeNames.Load(t); ok {
		return s.(string)
	}
	s := semconv.ErrorType(cause).Value.AsString()
	typeNames.Store(t, s)
	return s
}

// errorType is ErrorType as the attribute spans and metric points carry.
func errorType(err error) attribute.KeyValue {
	return semconv.ErrorTypeKey.String(ErrorType(err))
}
