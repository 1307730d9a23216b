package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/api"
	"github.com/sluicehq/sluice/internal/catalog"
)

// fakeAPI answers the daemon's API routes with fixed data, as the API's
// contract says, and records every request. The CLI tests run against the
// real daemon (cmd/sluice); this serves the routes and parameters the
// daemon of this revision does not have yet (PATCH, force, reveal=env,
// tail, the invocations filter, publish's sequence), and checks exactly
// what the CLI sends.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server

	mu   sync.Mutex
	reqs []request
	// logs and messages are what the log and tail routes stream; a
	// daemon that does not know "tail" streams them all.
	logs     []host.Record
	messages []api.TopicMessage
	// fail, if set, is the error every function invoke answers.
	fail string
}

// request is a request the fake received.
type request struct {
	method, path string
	query        url.Values
	header       http.Header
	body         string
}

var fakeTime = time.Date(2025, 1, 2, 3, 4, 5, 6e6, time.UTC)

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t}
	mux := http.NewServeMux()
	view := func(name string, reveal bool) api.FunctionView {
		env := map[string]string{"GREETING": "Hi"}
		if !reveal {
			env["GREETING"] = "***"
		}
		return api.FunctionView{Name: name, Version: 2, ABI: "reactor", Module: strings.Repeat("ab", 32), Size: 177,
			Limits: api.EffectiveLimits(catalog.Config{}), Env: env, Deployed: fakeTime}
	}
	fnView := func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, view(r.PathValue("name"), r.URL.Query().Get("reveal") == "env"))
	}
	trigger := catalog.Trigger{Name: "t", Function: "f", HTTP: &catalog.HTTPSpec{Path: "/t", Method: "POST"}, Created: fakeTime}
	wfView := api.WorkflowView{Name: "w", Version: 1, Revision: strings.Repeat("cd", 32), Source: "apiVersion: sluice/v1\nkind: Workflow\nname: w\ntasks: {a: {run: f}}\n", Created: fakeTime}
	inv := &engine.Invocation{ID: "inv-1", Workflow: "w", Revision: wfView.Revision, Status: engine.StatusSucceeded,
		Input: json.RawMessage(`{"n":1}`), Output: json.RawMessage(`{"n":2}`), Created: fakeTime, Finished: &fakeTime,
		Tasks: map[string]*engine.Task{"a": {Status: engine.TaskSucceeded, Run: "f", Attempts: 1}}}
	conflict := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("force") == "true" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, http.StatusConflict, map[string]any{
			"error": fmt.Sprintf("%s is used by workflow order", r.PathValue("name")), "code": "conflict",
			"dependents": []map[string]string{{"kind": "workflow", "name": "order"}, {"kind": "trigger", "name": "nightly"}},
		})
	}
	mux.HandleFunc("GET /v1/functions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, []api.FunctionView{view("f", r.URL.Query().Get("reveal") == "env")})
	})
	mux.HandleFunc("GET /v1/functions/{name}", fnView)
	mux.HandleFunc("PUT /v1/functions/{name}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 201, view(r.PathValue("name"), false))
	})
	mux.HandleFunc("PATCH /v1/functions/{name}", func(w http.ResponseWriter, r *http.Request) {
		v := view(r.PathValue("name"), false)
		v.Version = 3
		cfg, err := api.PatchConfig(catalog.Config{Env: map[string]string{"GREETING": "Hi", "DEBUG": "1"}}, r.URL.Query())
		if err != nil {
			writeJSON(w, 400, map[string]string{"error": err.Error(), "code": "invalid_argument"})
			return
		}
		v.Limits = api.EffectiveLimits(cfg)
		writeJSON(w, 200, v)
	})
	mux.HandleFunc("DELETE /v1/functions/{name}", conflict)
	mux.HandleFunc("POST /v1/functions/{name}/invoke", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		fail := f.fail
		f.mu.Unlock()
		if fail != "" {
			writeJSON(w, 502, map[string]string{"error": fail, "code": "function_error"})
			return
		}
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	mux.HandleFunc("GET /v1/functions/{name}/logs", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		enc := json.NewEncoder(w)
		for _, rec := range f.logs {
			enc.Encode(rec)
		}
	})
	mux.HandleFunc("POST /v1/triggers", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 201, trigger) })
	mux.HandleFunc("GET /v1/triggers", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, []catalog.Trigger{trigger}) })
	mux.HandleFunc("GET /v1/triggers/{name}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, api.TriggerView{Trigger: trigger})
	})
	mux.HandleFunc("DELETE /v1/triggers/{name}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	mux.HandleFunc("POST /v1/topics/{topic}/publish", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 201, map[string]any{"topic": r.PathValue("topic"), "sequence": 42})
	})
	mux.HandleFunc("GET /v1/topics/{topic}/tail", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		enc := json.NewEncoder(w)
		for _, m := range f.messages {
			enc.Encode(m)
		}
	})
	mux.HandleFunc("PUT /v1/workflows/{name}", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 201, wfView) })
	mux.HandleFunc("GET /v1/workflows", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, []api.WorkflowView{wfView}) })
	mux.HandleFunc("GET /v1/workflows/{name}", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, wfView) })
	mux.HandleFunc("DELETE /v1/workflows/{name}", conflict)
	mux.HandleFunc("POST /v1/workflows/{name}/invoke", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, inv) })
	mux.HandleFunc("GET /v1/invocations", func(w http.ResponseWriter, r *http.Request) {
		failed := *inv
		failed.ID, failed.Status, failed.Error = "inv-0", engine.StatusFailed, "task a: boom"
		writeJSON(w, 200, []*engine.Invocation{inv, &failed})
	})
	mux.HandleFunc("GET /v1/invocations/{id}", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, inv) })
	mux.HandleFunc("GET /v1/invocations/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, []*engine.Event{{Type: engine.EventInvocationCreated, Invocation: "inv-1", Workflow: "w", Time: fakeTime}})
	})
	mux.HandleFunc("POST /v1/invocations/{id}/cancel", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, inv) })
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		f.mu.Lock()
		f.reqs = append(f.reqs, request{r.Method, r.URL.Path, r.URL.Query(), r.Header.Clone(), string(b)})
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// last returns the last request received, failing if there was none.
func (f *fakeAPI) last() request {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		f.t.Fatal("the CLI sent no request")
	}
	return f.reqs[len(f.reqs)-1]
}

func (f *fakeAPI) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

// result is what a run of the command line printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

// run runs the command line in this process against the fake, with
// --server added at the end unless the args give it.
func (f *fakeAPI) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	if !strings.Contains(strings.Join(args, " "), "--server") {
		args = append(args, "--server", f.srv.URL)
	}
	return runCLI(stdin, args...)
}

func runCLI(stdin string, args ...string) result {
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr)
	return result{stdout.String(), stderr.String(), code}
}

func (f *fakeAPI) mustRun(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	r := f.run(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("sluice %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

func itoa(n int) string { return strconv.Itoa(n) }
