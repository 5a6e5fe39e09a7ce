package broker

// Markers for handler failures that retrying cannot fix. Wrap them with %w
// and match them with errors.Is:
//
//	return fmt.Errorf("order %s: %w: %w", id, broker.ErrDecode, err)
//
// Both imply ErrPermanent (errors.Is(err, ErrPermanent) holds for an error
// that wraps them), so the message is dead-lettered or dropped at once, and
// both name themselves for telemetry: error.type is "decode" or
// "validation".
var (
	// ErrDecode marks a message whose body could not be decoded.
	ErrDecode error = &failureKind{msg: "tracebus: decode failed", kind: "decode"}
	// ErrValidation marks a message that decoded but is not valid.
	ErrValidation error = &failureKind{msg: "tracebus: validation failed", kind: "validation"}
)

// failureKind is a sentinel that is permanent and names its error.type.
type failureKind struct{ msg, kind string }

func (e *failureKind) Error() string { return e.msg }

// Is makes errors.Is(err, ErrPermanent) hold for the marked error.
func (e *failureKind) Is(target error) bool { return target == ErrPermanent }

// ErrorType is the low-cardinality error.type telemetry records.
func (e *failureKind) ErrorType() string { return e.kind }
