package middleware

import (
	"context"
	"errors"
	"os"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/tracebus/tracebus/broker"
)

// Values of error.type that Telemetry records for the causes it
// recognises. They are few and stable, so that dashboards and alerts can
// rely on them and a Prometheus label stays low-cardinality.
const (
	// ErrorTypePanic: the handler panicked (broker.PanicError).
	ErrorTypePanic = "panic"
	// ErrorTypeTimeout: a deadline passed (context.DeadlineExceeded,
	// os.ErrDeadlineExceeded, or an error whose Timeout method reports
	// true, as net.Error does).
	ErrorTypeTimeout = "timeout"
	// ErrorTypeCanceled: the work was cancelled (context.Canceled).
	ErrorTypeCanceled = "canceled"
	// ErrorTypeDecode: the message body could not be decoded
	// (broker.DecodeError, or an error wrapping broker.ErrDecode).
	ErrorTypeDecode = "decode"
	// ErrorTypeValidation: the message decoded but is not valid
	// (broker.ValidationError, or an error wrapping broker.ErrValidation).
	ErrorTypeValidation = "validation"
	// ErrorTypePermanent: the error was marked permanent
	// (broker.ErrPermanent) and is none of the above.
	ErrorTypePermanent = "permanent"
	// ErrorTypeClosed: the broker or transport was closed (broker.ErrClosed).
	ErrorTypeClosed = "closed"
	// ErrorTypeOther: none of the above, as semconv spells it.
	ErrorTypeOther = "_OTHER"
)

// ErrorType returns the error.type Telemetry records for err, following
// the semantic conventions: the first error in err's chain with a method
// ErrorType() string that returns a non-empty value names itself (the
// broker's PanicError, DecodeError and ValidationError do); otherwise a
// recognised cause gives one of the ErrorType constants, checked in the
// order decode, validation, timeout, canceled, closed, permanent; otherwise
// ErrorTypeOther. For a
// broker.BatchError it is the type of the first failed message. The error's
// message and Go type are never used: "payment provider timeout" from
// errors.New is ErrorTypeOther, not a new label value per message.
func ErrorType(err error) string {
	var be broker.BatchError
	if errors.As(err, &be) {
		for _, e := range be {
			if e != nil {
				err = e
				break
			}
		}
	}
	var named interface{ ErrorType() string }
	if errors.As(err, &named) {
		if s := named.ErrorType(); s != "" {
			return s
		}
	}
	var timeout interface{ Timeout() bool }
	switch {
	case err == nil:
		return ErrorTypeOther
	case errors.Is(err, broker.ErrDecode):
		return ErrorTypeDecode
	case errors.Is(err, broker.ErrValidation):
		return ErrorTypeValidation
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &timeout) && timeout.Timeout():
		return ErrorTypeTimeout
	case errors.Is(err, context.Canceled):
		return ErrorTypeCanceled
	case errors.Is(err, broker.ErrClosed):
		return ErrorTypeClosed
	case errors.Is(err, broker.ErrPermanent):
		return ErrorTypePermanent
	default:
		return ErrorTypeOther
	}
}

// errorType is ErrorType as the attribute spans and metric points carry.
func errorType(err error) attribute.KeyValue {
	return semconv.ErrorTypeKey.String(ErrorType(err))
}
