package broker_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/internal/testkit"
	"github.com/tracebus/tracebus/testutil"
)

// At debug level every message gets a received and a processed line; a
// failure is logged at warn level as well; all name the destination, the
// group and the message id.
func TestDeliveryLogLines(t *testing.T) {
	var buf testutil.LogBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := broker.New(testutil.Memory(t), broker.WithLogger(logger))
	testkit.DeliverWithOneRetry(t, b, &broker.Message{Destination: "orders", ID: "order-7", Body: []byte("{}")}, broker.Group("billing"))

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

// A sender chooses the message id: a 64 KiB id gives log lines with its
// first MessageAttributeLimit bytes, cut at a character boundary, on the
// debug lines and on the failure lines alike.
func TestDeliveryLogLinesCapTheMessageID(t *testing.T) {
	id := "é" + strings.Repeat("x", messageAttributeLimit-3) + "ü" + strings.Repeat("y", 64<<10)
	var buf testutil.LogBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := broker.New(testutil.Memory(t), broker.WithLogger(logger))
	testkit.DeliverWithOneRetry(t, b, &broker.Message{Destination: "orders", ID: id, Body: []byte("{}")}, broker.Group("billing"))

	want := id[:messageAttributeLimit-1] // "ü" would end one byte past the cap
	levels := map[string]int{}
	for _, l := range buf.Records(t) {
		levels[l["level"].(string)]++
		if got, _ := l["message_id"].(string); got != want {
			t.Errorf("%s line: message_id of %d bytes (%.20q...), want the first %d bytes of the id",
				l["level"], len(got), got, len(want))
		}
	}
	if levels["DEBUG"] != 4 || levels["WARN"] != 1 {
		t.Errorf("log lines by level %v, want 4 debug and 1 warn", levels)
	}
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		if len(line) > 2*messageAttributeLimit+512 {
			t.Errorf("a log line of %d bytes: %.200s", len(line), line)
		}
	}
}

// The typed layer's line for an undecodable message of a batch caps the id
// too.
func TestBatchRejectLogLineCapsTheMessageID(t *testing.T) {
	id := strings.Repeat("z", 64<<10)
	var buf testutil.LogBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := broker.New(testutil.Memory(t), broker.WithLogger(logger))
	handled := make(chan struct{}, 1)
	err := broker.HandleBatch(b, "orders", func(_ context.Context, vs []struct{ ID int }) error {
		for _, v := range vs {
			if v.ID == 1 {
				handled <- struct{}{}
			}
		}
		return nil
	}, broker.Batch(2, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	if err := b.PublishBatch(t.Context(), []*broker.Message{
		{Destination: "orders", ID: id, Body: []byte("not json")},
		{Destination: "orders", ID: "ok", Body: []byte(`{"ID":1}`)},
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-handled:
	case <-time.After(30 * time.Second):
		t.Fatal("the batch handler was not called")
	}
	found := false
	for _, l := range buf.Records(t) {
		if l["msg"] != "tracebus: message of a batch rejected, dropping it" {
			continue
		}
		found = true
		if got, _ := l["message_id"].(string); got != id[:messageAttributeLimit] {
			t.Errorf("reject line: message_id of %d bytes, want %d", len(got), messageAttributeLimit)
		}
	}
	if !found {
		t.Errorf("no reject line among:\n%.2000s", buf.String())
	}
}

// messageAttributeLimit is the broker's cap on message ids in log lines,
// the same as the middleware's default cap on spans (256 bytes).
const messageAttributeLimit = 256
