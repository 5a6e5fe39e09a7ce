package baggage

import "errors"

// Errors returned by Set and ContextWith, and wrapped by the errors that
// the consume path and ContextForPublish report through otel.Handle.
// Match them with errors.Is.
var (
	// ErrInvalidKey: a key that is not a W3C baggage key (an RFC 7230
	// token: ASCII letters, digits and !#$%&'*+-.^_`|~, at least one).
	ErrInvalidKey = errors.New("baggage: invalid key")
	// ErrInvalidValue: a value that is not valid UTF-8. Any UTF-8 string is
	// a valid value; it is percent-encoded on the wire.
	ErrInvalidValue = errors.New("baggage: invalid value")
	// ErrLimit: the baggage would exceed the W3C limits of MaxMembers members
	// or MaxBytes bytes of encoded baggage-string.
	ErrLimit = errors.New("baggage: W3C limit exceeded")
	// ErrMalformed: a baggage header member that is not valid W3C syntax.
	// It is only reported through otel.Handle: the member is skipped.
	ErrMalformed = errors.New("baggage: malformed member")
	// ErrNilBaggage: Set called on a nil *Baggage. FromContext never returns
	// nil; this guards views obtained some other way.
	ErrNilBaggage = errors.New("baggage: nil *Baggage")
)
