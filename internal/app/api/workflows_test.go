package api

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/errcode"
	"github.com/sluicehq/sluice/internal/catalog"
)

func TestWorkflowEngineErrors(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("%w: no invocation %q", engine.ErrNotFound, "x"), http.StatusNotFound, "not_found"},
		{fmt.Errorf("%w: invocation id %q", engine.ErrInvalid, "a b"), http.StatusBadRequest, "invalid_argument"},
		{fmt.Errorf("%w: invocation x has finished", engine.ErrConflict), http.StatusConflict, "conflict"},
		{errors.New("the workflow engine is shutting down"), http.StatusInternalServerError, "internal"},
	} {
		err := engineError(tc.err)
		code := errcode.Of(err)
		status := code.Status()
		if status != tc.status || string(code) != tc.code || err.Error() != tc.err.Error() {
			t.Errorf("%v: %d %s %q, want %d %s", tc.err, status, code, err, tc.status, tc.code)
		}
	}
}

func TestTriggerRequestOfWorkflow(t *testing.T) {
	req := TriggerRequest{Name: "t", Workflow: "order", HTTP: &catalog.HTTPSpec{Path: "/order", Method: "post"}}
	tr, err := req.Trigger()
	if err != nil {
		t.Fatal(err)
	}
	if tr.Workflow != "order" || tr.Function != "" || tr.HTTP.Method != "POST" || req.HTTP.Method != "post" {
		t.Fatalf("trigger %+v (request left %+v)", tr, req.HTTP)
	}
	req = TriggerRequest{Name: "q", Function: "f", Queue: &QueueRequest{Topic: "in"}}
	if tr, err = req.Trigger(); err != nil {
		t.Fatal(err)
	}
	if q := tr.Queue; q.MaxRetries != catalog.DefaultMaxRetries || q.MaxInflight != catalog.DefaultMaxInflight || time.Duration(q.AckWait) != 30*time.Second {
		t.Fatalf("queue defaults: %+v", q)
	}
	req.Queue.AckWait = "soon"
	if _, err := req.Trigger(); !errors.Is(err, catalog.ErrInvalid) {
		t.Fatalf("bad ack wait: %v", err)
	}
}
