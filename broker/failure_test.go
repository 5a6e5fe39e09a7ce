package broker_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/tracebus/tracebus/broker"
)

func TestFailureMarkersArePermanent(t *testing.T) {
	for _, marker := range []error{broker.ErrDecode, broker.ErrValidation} {
		err := fmt.Errorf("order 7: %w: %w", marker, errors.New("unexpected end of JSON input"))
		if !errors.Is(err, marker) || !errors.Is(err, broker.ErrPermanent) {
			t.Errorf("%v: errors.Is marker %v, permanent %v; want both", err, errors.Is(err, marker), errors.Is(err, broker.ErrPermanent))
		}
	}
	if errors.Is(broker.ErrDecode, broker.ErrValidation) || errors.Is(broker.ErrValidation, broker.ErrDecode) {
		t.Error("decode and validation markers match each other")
	}
}
