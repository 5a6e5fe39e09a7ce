package broker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/memory"
	"github.com/tracebus/tracebus/testutil"
)

// TestWithErrorText checks that the hook replaces a handler's error text in
// log records and in the dead-letter header, where by default the text
// (here quoting the body) would leave the process.
func TestWithErrorText(t *testing.T) {
	var logs testutil.LogBuffer
	errCard := errors.New("card declined")
	tr, err := memory.New()
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(tr,
		broker.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))),
		broker.WithErrorText(func(err error) string {
			if errors.Is(err, errCard) {
				return "redacted: card declined"
			}
			return "redacted"
		}))
	if err := b.Subscribe("payments", func(_ context.Context, m *broker.Message) error {
		return errors.Join(errCard, errors.New("body was "+string(m.Body)))
	}, broker.MaxAttempts(2), broker.RetryBackoff(broker.ConstantBackoff(time.Millisecond)), broker.DeadLetter("payments.dead")); err != nil {
		t.Fatal(err)
	}
	dead := make(chan string, 1)
	if err := b.Subscribe("payments.dead", func(_ context.Context, m *broker.Message) error {
		dead <- m.Headers.Get(broker.HeaderDeadLetterError)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	if err := b.Publish(ctx, &broker.Message{Destination: "payments", Body: []byte("4111-1111")}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-dead:
		if strings.Contains(got, "4111") || !strings.HasPrefix(got, "redacted: ") {
			t.Errorf("dead-letter error header %q, want the hook's text", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no dead letter")
	}
	records := logs.Records(t)
	if len(records) == 0 {
		t.Fatal("no log records")
	}
	for _, r := range records {
		text, _ := r["error"].(string)
		if strings.Contains(fmt.Sprint(r), "4111") || !strings.HasPrefix(text, "redacted") {
			t.Errorf("log record %v: want the hook's error text and no body", r)
		}
	}
}
