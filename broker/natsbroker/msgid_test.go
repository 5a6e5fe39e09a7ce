package natsbroker_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/natsbroker"
	"github.com/tracebus/tracebus/testutil"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// Every publish gets an id, carried as Nats-Msg-Id. Publishing the same
// Message again (a retry after an error) sends the same id, so the stream
// stores it once, and the transport logs the duplicate it dropped; new
// Messages, typed publishes included, get new ids.
func TestGeneratedIDDeduplicatesRetries(t *testing.T) {
	srv := natstest.New(t)
	js := jetStreamClient(t, srv)
	createStream(t, srv, js, "RETRY", "retry.>")
	var logs testutil.LogBuffer
	b := broker.New(connect(t, srv, natsbroker.WithJetStream()), broker.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	ctx := context.Background()
	t.Cleanup(func() { _ = b.Close(ctx) })
	must(t, b.Start(ctx))

	m := &broker.Message{Destination: "retry.order", Body: []byte("a")}
	must(t, b.Publish(ctx, m))
	id := m.ID
	if id == "" {
		t.Fatal("Publish gave the message no id")
	}
	must(t, b.Publish(ctx, m)) // the retry
	if m.ID != id {
		t.Fatalf("the retry has the id %q, want the first publish's %q", m.ID, id)
	}
	stream, err := js.Stream(ctx, "RETRY")
	must(t, err)
	stored, err := stream.GetLastMsgForSubject(ctx, "retry.order")
	must(t, err)
	if got := stored.Header.Get(jetstream.MsgIDHeader); got != id {
		t.Errorf("stored Nats-Msg-Id %q, want %q", got, id)
	}
	if n := subjectCount(t, stream, "retry.order"); n != 1 {
		t.Errorf("a publish and its retry stored %d messages, want 1", n)
	}
	dups := 0
	for _, r := range logs.Records(t) {
		if r["level"] == "WARN" && r["message_id"] == id && r["stream"] == "RETRY" {
			dups++
		}
	}
	if dups != 1 {
		t.Errorf("%d warnings about the dropped duplicate, want 1:\n%s", dups, logs.String())
	}

	pub := broker.Must(broker.NewPublisher[string](b, "retry.typed"))
	must(t, pub.Publish(ctx, "x"))
	must(t, pub.Publish(ctx, "x"))
	must(t, b.Publish(ctx, &broker.Message{Destination: "retry.typed", Body: []byte(`"x"`)}))
	if n := subjectCount(t, stream, "retry.typed"); n != 3 {
		t.Errorf("three publishes of equal content stored %d messages, want 3", n)
	}
}

func subjectCount(t *testing.T, stream jetstream.Stream, subject string) uint64 {
	t.Helper()
	info, err := stream.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	must(t, err)
	return info.State.Subjects[subject]
}
