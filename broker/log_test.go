package broker_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/testutil"
)

// At debug level every message gets a received and a processed line; a
// failure is logged at warn level as well; all name the destination, the
// group and the message id.
func TestDeliveryLogLines(t *testing.T) {
	var buf testutil.LogBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := broker.New(testutil.Memory(t), broker.WithLogger(logger))
	testutil.DeliverWithOneRetry(t, b, &broker.Message{Destination: "orders", ID: "order-7", Body: []byte("{}")}, broker.Group("billing"))

	var got []string
	for _, l := range buf.Records(t) {
		got = append(got, l["level"].(string)+" "+l["msg"].(string))
		if l["destination"] != "orders" || l["group"] != "billing" || l["message_id"] != "order-7" {
			t.Errorf("line %v lacks destination, group or message id", l)
		}
	}
	want := []string{
		"DEBUG tracebus: received", "DEBUG tracebus: processed", "WARN tracebus: handler failed, will retry",
		"DEBUG tracebus: received", "DEBUG tracebus: processed",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
