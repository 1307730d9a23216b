// wfguest is the Go reactor the workflow engine's tests run as their
// tasks. The input is a JSON object whose "op" chooses what it does:
//
//	{"op":"double","n":N}   -> {"n":2N}
//	{"op":"add","n":N}      -> {"n":N+1}
//	{"op":"flaky","fails":K} fails on attempts 1..K, then -> {"attempt":A}
//	{"op":"sleep","ms":M}   sleeps M ms -> {"slept":M}
//	{"op":"fail","msg":S}   fails with S
//	{"op":"code","code":C,"msg":S} fails with S and the code C (sluice.Fail)
//	{"op":"meta"}           -> the workflow metadata and trace context of the call
//	{"op":"text","s":S}     -> S as plain text (not JSON)
//	{"op":"bytes","b64":B}  -> the bytes B holds in base64
//
// Anything else (not JSON, no op) comes back as it is.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	sluice "github.com/sluicehq/sluice/guests/go"
)

type request struct {
	Op    string  `json:"op"`
	N     float64 `json:"n"`
	Fails int     `json:"fails"`
	Ms    int     `json:"ms"`
	Msg   string  `json:"msg"`
	Code  string  `json:"code"`
	S     string  `json:"s"`
	B64   []byte  `json:"b64"`
}

func meta(key string) string {
	v, _ := sluice.Meta(key)
	return v
}

func handle(in []byte) ([]byte, error) {
	var r request
	if json.Unmarshal(in, &r) != nil || r.Op == "" {
		return in, nil
	}
	switch r.Op {
	case "double":
		return json.Marshal(map[string]float64{"n": 2 * r.N})
	case "add":
		return json.Marshal(map[string]float64{"n": r.N + 1})
	case "flaky":
		attempt, _ := strconv.Atoi(meta("workflow.attempt"))
		if attempt <= r.Fails {
			return nil, fmt.Errorf("flaky: attempt %d fails", attempt)
		}
		return json.Marshal(map[string]int{"attempt": attempt})
	case "sleep":
		time.Sleep(time.Duration(r.Ms) * time.Millisecond)
		return json.Marshal(map[string]int{"slept": r.Ms})
	case "fail":
		return nil, errors.New(r.Msg)
	case "code":
		return nil, fmt.Errorf("wrapped: %w", sluice.Fail(r.Code, r.Msg))
	case "meta":
		return json.Marshal(map[string]string{
			"workflow": meta("workflow"), "invocation": meta("workflow.invocation"),
			"task": meta("workflow.task"), "attempt": meta("workflow.attempt"),
			"traceparent": meta("traceparent"), "tracestate": meta("tracestate"),
		})
	case "text":
		return []byte(r.S), nil
	case "bytes":
		return r.B64, nil
	}
	return nil, fmt.Errorf("unknown op %q", r.Op)
}

func main() {}

func init() { sluice.Handle(handle) }
