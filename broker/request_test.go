package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/driver"
	"github.com/tracebus/tracebus/broker/memory"
)

func memoryTransport(t *testing.T) *memory.Transport {
	tr, err := memory.New()
	must(t, err)
	return tr
}

func requestCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Closing the broker fails the requests still waiting with ErrClosed, and
// later requests too.
func TestRequestFailsOnClose(t *testing.T) {
	b := memoryBroker()
	arrived := make(chan struct{})
	must(t, b.Subscribe("slow", func(ctx context.Context, m *broker.Message) error {
		close(arrived)
		<-ctx.Done() // the broker's forced shutdown
		return nil
	}))
	must(t, b.Start(context.Background()))
	errc := make(chan error, 1)
	go func() {
		_, err := b.Request(requestCtx(t), &broker.Message{Destination: "slow"})
		errc <- err
	}()
	<-arrived
	closeCtx, cancel := context.WithCancel(context.Background())
	cancel() // do not wait for the handler
	_ = b.Close(closeCtx)
	if err := <-errc; !errors.Is(err, broker.ErrClosed) {
		t.Errorf("pending request: %v, want ErrClosed", err)
	}
	if _, err := b.Request(requestCtx(t), &broker.Message{Destination: "slow"}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("request after close: %v, want ErrClosed", err)
	}
	if st := b.RequestStats(); st.Pending != 0 {
		t.Errorf("%d requests still pending", st.Pending)
	}
}

// plain is a transport of a system without replies.
type plain struct{ driver.Transport }

func (plain) OpenInbox(context.Context, driver.InboxFunc) (driver.Inbox, error) {
	return nil, fmt.Errorf("plain: no replies: %w", errors.ErrUnsupported)
}

// A transport that cannot open an inbox fails the request with its error,
// which still matches errors.ErrUnsupported.
func TestRequestNeedsReplyInbox(t *testing.T) {
	b := broker.New(plain{memoryTransport(t)})
	_, err := b.Request(requestCtx(t), &broker.Message{Destination: "x"})
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("request on a transport without inbox: %v, want errors.ErrUnsupported", err)
	}
}

func TestRequestRejectsBadInput(t *testing.T) {
	b := memoryBroker()
	for _, tc := range []struct {
		msg  *broker.Message
		want error
	}{
		{nil, broker.ErrInvalid},
		{&broker.Message{}, broker.ErrInvalid},
	} {
		if _, err := b.Request(requestCtx(t), tc.msg); !errors.Is(err, tc.want) {
			t.Errorf("request %+v: %v, want %v", tc.msg, err, tc.want)
		}
	}
	if err := b.Reply(context.Background(), &broker.Message{Destination: "x"}, &broker.Message{}); !errors.Is(err, broker.ErrInvalid) {
		t.Errorf("reply to a message without reply address: %v, want ErrNoReplyAddress", err)
	}
}

// An error reply from a replier that does not play by the rules (a type
// with spaces, control characters and no end, a huge text) reaches the
// requester bounded and clean.
func TestHostileErrorReply(t *testing.T) {
	b := memoryBroker()
	must(t, b.Subscribe("hostile", func(ctx context.Context, m *broker.Message) error {
		r := &broker.Message{Body: []byte(strings.Repeat("é", 5000))}
		r.Headers.Set(driver.HeaderReplyError, "bad type\r\n<script>"+strings.Repeat("x", 500))
		return b.Reply(ctx, m, r)
	}))
	must(t, b.Start(context.Background()))
	t.Cleanup(func() { _ = b.Close(context.Background()) })

	_, err := b.Request(requestCtx(t), &broker.Message{Destination: "hostile"})
	re, ok := errors.AsType[*broker.ReplyError](err)
	if !ok {
		t.Fatalf("request: %v, want a *ReplyError", err)
	}
	if want := ("badtypescript" + strings.Repeat("x", 51)); re.Type != want {
		t.Errorf("error type %q, want %q", re.Type, want)
	}
	if len(re.Message) > 1024 || !strings.HasPrefix(re.Message, "é") || strings.Count(re.Message, "é") != 512 {
		t.Errorf("error text of %d bytes, want 512 whole runes", len(re.Message))
	}
}
