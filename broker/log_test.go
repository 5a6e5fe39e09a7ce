package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/memory"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(s.b.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// At debug level every message gets a received and a processed line; a
// failure is logged at warn level as well; all name the destination, the
// group and the message id.
func TestDeliveryLogLines(t *testing.T) {
	var buf syncBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := broker.New(memory.New(), broker.WithLogger(logger))
	done := make(chan struct{})
	err := b.Subscribe("orders", func(_ context.Context, msg *broker.Message) error {
		if msg.Delivery.DeliveryCount == 1 {
			return errors.New("payment provider timeout")
		}
		close(done)
		return nil
	}, broker.Group("billing"), broker.MaxAttempts(2), broker.WithBackoff(broker.ConstantBackoff(0)))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(t.Context(), &broker.Message{Destination: "orders", ID: "order-7", Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := b.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	var got []string
	for _, l := range buf.lines(t) {
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
