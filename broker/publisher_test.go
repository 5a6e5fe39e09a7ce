package broker_test

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/codec"
)

// NewPublisher and NewRequester report their programming errors as errors
// matching ErrInvalid, register nothing for them, and Must turns such an
// error into a panic.
func TestNewPublisherErrors(t *testing.T) {
	b := memoryBroker()
	cases := map[string]error{}
	_, cases["empty destination"] = broker.NewPublisher[order](b, "")
	_, cases["KeyFunc of another type"] = broker.NewPublisher[order](b, "orders",
		broker.KeyFunc(func(i invoice) string { return "" }))
	_, cases["protobuf without a pointer"] = broker.NewPublisher[structpb.Struct](b, "orders", broker.Codec(codec.Protobuf))
	_, cases["requester without destination"] = broker.NewRequester[order, invoice](b, "")
	for name, err := range cases {
		if !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if eps := b.Endpoints(); len(eps) != 0 {
		t.Errorf("failed builds registered endpoints %+v", eps)
	}

	pub := broker.Must(broker.NewPublisher[order](b, "orders"))
	if pub == nil || len(b.Endpoints()) != 1 {
		t.Fatalf("Must of a valid publisher: %v, endpoints %+v", pub, b.Endpoints())
	}
	defer func() {
		if r := recover(); r == nil {
			t.Error("Must did not panic on an error")
		} else if err, ok := r.(error); !ok || !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("Must panicked with %v, want the error", r)
		}
	}()
	broker.Must(broker.NewPublisher[order](b, ""))
}
