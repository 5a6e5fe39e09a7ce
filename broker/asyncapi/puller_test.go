package asyncapi_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/tracebus/tracebus/broker"
	"github.com/tracebus/tracebus/broker/asyncapi"
	"github.com/tracebus/tracebus/testutil"
)

// A Puller is documented as a receive operation of its channel, with its
// payload, like a typed subscription.
func TestBuildPuller(t *testing.T) {
	b := broker.New(testutil.Memory(t))
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	_, err := broker.NewPuller[Order](b, "jobs", broker.Group("workers"))
	must(t, err)
	doc, err := asyncapi.New(asyncapi.WithInfo(asyncapi.Info{Title: "jobs"})).Build(b)
	must(t, err)
	var j struct {
		Operations map[string]struct {
			Action   string `json:"action"`
			Messages []struct {
				Ref string `json:"$ref"`
			} `json:"messages"`
		} `json:"operations"`
	}
	must(t, json.Unmarshal(validate(t, doc), &j))
	op, ok := j.Operations["receive_jobs_workers"]
	if !ok {
		t.Fatalf("no operation receive_jobs_workers among %v", j.Operations)
	}
	if op.Action != "receive" || len(op.Messages) != 1 || op.Messages[0].Ref != "#/channels/jobs/messages/Order" {
		t.Errorf("operation %+v, want a receive of Order on jobs", op)
	}
}
