package broker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tracebus/tracebus/broker"
)

// A Requester sends a typed request and waits for the typed reply: the
// replier is a HandleResult handler, whose return value is the reply and
// whose error reaches the requester as a *ReplyError (its type only, unless
// the subscription has ExposeErrors or the handler returns a *ReplyError).
func ExampleRequester() {
	b := memoryBroker(broker.WithLogger(discardLogger()))
	broker.HandleResult(b, "invoices.quote", func(ctx context.Context, o Order) (Invoice, error) {
		if o.Customer == "mallory" {
			return Invoice{}, &broker.ReplyError{Type: "blocked", Message: "customer is blocked"}
		}
		return Invoice{OrderID: o.ID, Amount: o.Total * 1.2}, nil
	}, broker.Group("billing"))
	ctx := context.Background()
	b.Start(ctx)
	defer b.Close(ctx)

	quotes := broker.Must(broker.NewRequester[Order, Invoice](b, "invoices.quote"))
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second) // a request needs a deadline
	defer cancel()
	inv, err := quotes.Request(rctx, Order{ID: "A-1", Customer: "ada", Total: 10})
	fmt.Println(inv, err)
	_, err = quotes.Request(rctx, Order{ID: "A-2", Customer: "mallory", Total: 10})
	var re *broker.ReplyError
	fmt.Println(errors.As(err, &re), errors.Is(err, broker.ErrRemote), re.Type, re.Message)
	// Output:
	// {A-1 12} <nil>
	// true true blocked customer is blocked
}

// Byte-level handlers answer with Reply (or ReplyError); Request returns
// the reply. The reply address is the broker's business; a correlation id
// the caller sets (driver.HeaderCorrelationID) is kept and comes back on
// the reply, otherwise the broker sets its own.
func ExampleBroker_Request() {
	b := memoryBroker()
	b.Subscribe("time.now", func(ctx context.Context, msg *broker.Message) error {
		return b.Reply(ctx, msg, &broker.Message{Body: []byte("it is " + string(msg.Body))})
	})
	ctx := context.Background()
	b.Start(ctx)
	defer b.Close(ctx)

	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	reply, err := b.Request(rctx, &broker.Message{Destination: "time.now", Body: []byte("noon")})
	fmt.Println(string(reply.Body), err)

	_, err = b.Request(rctx, &broker.Message{Destination: "nobody.listens"})
	fmt.Println(errors.Is(err, broker.ErrNoResponders))
	// Output:
	// it is noon <nil>
	// true
}
