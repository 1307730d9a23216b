package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/triggers/route"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// mod is the sha256 of a module named by a label in the tests.
func mod(label string) string {
	sum := sha256.Sum256([]byte(label))
	return hex.EncodeToString(sum[:])
}

func deployed(name, module string) *Event {
	return &Event{Type: EventFunctionDeployed, Time: t0, Function: &Function{Name: name, Module: mod(module), Size: 10, Chunks: 1}}
}

// workflow is a WorkflowCreated event of a definition that uses fns and
// wfs.
func workflow(name, source string, fns, wfs []string) *Event {
	sum := sha256.Sum256([]byte(source))
	return &Event{Type: EventWorkflowCreated, Time: t0, Workflow: &Workflow{
		Name: name, Source: source, Revision: hex.EncodeToString(sum[:]), Functions: fns, Workflows: wfs}}
}

func wfTrigger(name, wf, path string) *Event {
	return &Event{Type: EventTriggerCreated, Time: t0, Trigger: &Trigger{Name: name, Workflow: wf, HTTP: &HTTPSpec{Path: path}}}
}

func forced(ev *Event) *Event { ev.Force = true; return ev }

func httpTrigger(name, fn, path, method string) *Event {
	return &Event{Type: EventTriggerCreated, Time: t0, Trigger: &Trigger{Name: name, Function: fn, HTTP: &HTTPSpec{Path: path, Method: method}}}
}

func deleted(typ, name string) *Event { return &Event{Type: typ, Time: t0, Name: name} }

func TestApply(t *testing.T) {
	type step struct {
		ev      *Event
		wantErr error
		says    string
	}
	tests := []struct {
		name  string
		steps []step
		check func(t *testing.T, s *State)
	}{
		{"versions count up per name", []step{
			{ev: deployed("a", "m1")}, {ev: deployed("a", "m2")}, {ev: deployed("b", "m1")},
		}, func(t *testing.T, s *State) {
			if s.Functions["a"].Version != 2 || s.Functions["a"].Module != mod("m2") || s.Functions["b"].Version != 1 {
				t.Fatalf("versions %+v %+v", s.Functions["a"], s.Functions["b"])
			}
			if len(s.Modules) != 2 {
				t.Fatalf("modules %v", s.Modules)
			}
		}},
		{"a name deleted and deployed again goes on counting", []step{
			{ev: deployed("a", "m1")}, {ev: deleted(EventFunctionDeleted, "a")}, {ev: deployed("a", "m1")},
		}, func(t *testing.T, s *State) {
			if s.Functions["a"].Version != 2 {
				t.Fatalf("version %d, want 2", s.Functions["a"].Version)
			}
		}},
		{"delete a missing function", []step{
			{ev: deleted(EventFunctionDeleted, "ghost"), wantErr: ErrNotFound, says: `no function "ghost"`},
		}, nil},
		{"a function in use cannot be deleted", []step{
			{ev: deployed("a", "m")}, {ev: httpTrigger("t2", "a", "/x", "")}, {ev: httpTrigger("t1", "a", "/y", "")},
			{ev: deleted(EventFunctionDeleted, "a"), wantErr: ErrConflict,
				says: `function "a" is used by trigger "t1" and trigger "t2": delete them first, or delete with --force`},
		}, func(t *testing.T, s *State) {
			if s.Functions["a"] == nil {
				t.Fatal("a rejected delete deleted the function")
			}
		}},
		{"a function a workflow uses cannot be deleted", []step{
			{ev: deployed("price", "m")}, {ev: deployed("notify", "m")},
			{ev: workflow("order", "v1", []string{"notify", "price"}, nil)},
			{ev: workflow("audit", "v1", []string{"price"}, nil)},
			{ev: wfTrigger("t1", "order", "/order")},
			{ev: deleted(EventFunctionDeleted, "price"), wantErr: ErrConflict,
				says: `function "price" is used by workflow "audit" and workflow "order": delete them first, or delete with --force`},
			// a new version of audit no longer uses price; order still does
			{ev: workflow("audit", "v2", []string{"notify"}, nil)},
			{ev: deleted(EventFunctionDeleted, "price"), wantErr: ErrConflict, says: `function "price" is used by workflow "order": delete it first`},
			{ev: deleted(EventWorkflowDeleted, "order"), wantErr: ErrConflict, says: `workflow "order" is used by trigger "t1"`},
			{ev: forced(deleted(EventFunctionDeleted, "price"))},
		}, func(t *testing.T, s *State) {
			if s.Functions["price"] != nil || s.Workflows["order"] == nil {
				t.Fatal("--force did not delete the function, or deleted its user")
			}
		}},
		{"a workflow another workflow runs cannot be deleted, one that runs itself can", []step{
			{ev: deployed("f", "m")},
			{ev: workflow("child", "c", []string{"f"}, []string{"child"})},
			{ev: workflow("parent", "p", nil, []string{"child"})},
			{ev: deleted(EventWorkflowDeleted, "child"), wantErr: ErrConflict, says: `workflow "child" is used by workflow "parent"`},
			{ev: deleted(EventWorkflowDeleted, "parent")},
			{ev: deleted(EventWorkflowDeleted, "child")},
		}, func(t *testing.T, s *State) {
			if len(s.Workflows) != 0 {
				t.Fatalf("workflows left: %v", s.Workflows)
			}
		}},
		{"a forced delete leaves dangling triggers and workflows", []step{
			{ev: deployed("f", "m")}, {ev: workflow("w", "x", []string{"f"}, nil)}, {ev: wfTrigger("t", "w", "/w")},
			{ev: forced(deleted(EventWorkflowDeleted, "w"))},
			{ev: forced(deleted(EventFunctionDeleted, "f"))},
		}, func(t *testing.T, s *State) {
			if len(s.Functions)+len(s.Workflows) != 0 || s.Triggers["t"] == nil {
				t.Fatalf("state %+v", s)
			}
		}},
		{"a workflow is created only while what it uses exists, in log order", []step{
			{ev: workflow("w", "x", []string{"gone"}, nil), wantErr: ErrNotFound, says: `runs function "gone"`},
			{ev: deployed("f", "m")},
			{ev: workflow("w", "x", []string{"f"}, []string{"other"}), wantErr: ErrNotFound, says: `runs workflow "other"`},
			{ev: workflow("w", "x", []string{"f"}, []string{"w"})},
		}, nil},
		{"a definition stored before uses were recorded names nothing", []step{
			{ev: deployed("f", "m")}, {ev: workflow("old", "uses f, says nothing", nil, nil)},
			{ev: deleted(EventFunctionDeleted, "f")},
		}, nil},
		{"a change of configuration applies to the version it was made to", []step{
			{ev: deployed("f", "m")},
			{ev: &Event{Type: EventFunctionDeployed, Function: &Function{Name: "f", Module: mod("m"), Size: 10, Chunks: 1, Config: Config{Concurrency: 2}}, IfVersion: 1}},
			{ev: &Event{Type: EventFunctionDeployed, Function: &Function{Name: "f", Module: mod("m"), Size: 10, Chunks: 1}, IfVersion: 1},
				wantErr: ErrConflict, says: `function "f" changed meanwhile (version 2 is current, the change was made to version 1): try again`},
			{ev: &Event{Type: EventFunctionDeployed, Function: &Function{Name: "g", Module: mod("m"), Size: 10, Chunks: 1}, IfVersion: 1},
				wantErr: ErrNotFound, says: `no function "g"`},
		}, func(t *testing.T, s *State) {
			if f := s.Functions["f"]; f.Version != 2 || f.Config.Concurrency != 2 {
				t.Fatalf("function %+v", f)
			}
		}},
		{"forged and malformed events change nothing", []step{
			{ev: &Event{Type: EventFunctionDeployed, Function: &Function{Name: "f", Module: "../../etc/passwd", Size: 10, Chunks: 1}}, wantErr: ErrInvalid, says: "not a sha256"},
			{ev: &Event{Type: EventFunctionDeployed, Function: &Function{Name: "f", Module: mod("m"), Size: 1 << 40, Chunks: 1}}, wantErr: ErrInvalid, says: "chunks"},
			{ev: &Event{Type: EventFunctionDeployed, Function: &Function{Name: "f", Module: mod("m"), Size: 0, Chunks: 0}}, wantErr: ErrInvalid, says: "chunks"},
			{ev: &Event{Type: EventFunctionDeployed, Function: &Function{Name: "f", Module: mod("m"), Size: 10, Chunks: 1, Config: Config{Concurrency: -1}}}, wantErr: ErrInvalid, says: "negative"},
			{ev: &Event{Type: EventFunctionDeployed, Function: &Function{Name: "f", Module: mod("m"), Size: 10, Chunks: 1, Config: Config{Env: map[string]string{"A=B": "c"}}}}, wantErr: ErrInvalid, says: "env name"},
			{ev: &Event{Type: EventWorkflowCreated, Workflow: &Workflow{Name: "w", Source: "x", Revision: mod("y")}}, wantErr: ErrInvalid, says: "not the sha256 of its source"},
			{ev: workflow("w", "x", []string{"Bad Name"}, nil), wantErr: ErrInvalid, says: `"Bad Name"`},
			{ev: &Event{Type: EventWorkflowCreated}, wantErr: ErrInvalid, says: "without a workflow"},
			{ev: &Event{Type: EventTriggerCreated}, wantErr: ErrInvalid, says: "without a trigger"},
			{ev: &Event{Type: EventFunctionDeployed}, wantErr: ErrInvalid, says: "without a function"},
		}, func(t *testing.T, s *State) {
			if len(s.Functions)+len(s.Workflows)+len(s.Triggers)+len(s.Modules) != 0 {
				t.Fatalf("state %+v", s)
			}
		}},
		{"the whole request is a workflow trigger's option", []step{
			{ev: deployed("f", "m")}, {ev: workflow("w", "x", []string{"f"}, nil)},
			{ev: &Event{Type: EventTriggerCreated, Time: t0, Trigger: &Trigger{Name: "fn-req", Function: "f", HTTP: &HTTPSpec{Path: "/f", Request: true}}},
				wantErr: ErrInvalid, says: `trigger "fn-req": --http-request gives a workflow the whole request`},
			{ev: &Event{Type: EventTriggerCreated, Time: t0, Trigger: &Trigger{Name: "wf-req", Workflow: "w", HTTP: &HTTPSpec{Path: "/w", Request: true}}}},
		}, func(t *testing.T, s *State) {
			if len(s.Triggers) != 1 || !s.Triggers["wf-req"].HTTP.Request {
				t.Fatalf("triggers %+v", s.Triggers)
			}
		}},
		{"trigger for a missing function", []step{
			{ev: httpTrigger("t", "ghost", "/x", ""), wantErr: ErrNotFound, says: `no function "ghost"`},
		}, nil},
		{"trigger names are unique", []step{
			{ev: deployed("a", "m")}, {ev: httpTrigger("t", "a", "/x", "")},
			{ev: httpTrigger("t", "a", "/y", ""), wantErr: ErrConflict, says: `trigger "t" exists`},
		}, nil},
		{"routes: methods share a path, ANY takes it all", []step{
			{ev: deployed("a", "m")},
			{ev: httpTrigger("get", "a", "/x", "GET")},
			{ev: httpTrigger("post", "a", "/x", "POST")},
			{ev: httpTrigger("get2", "a", "/x", "GET"), wantErr: ErrConflict, says: `route GET /x is taken by trigger "get"`},
			{ev: httpTrigger("any", "a", "/x", ""), wantErr: ErrConflict, says: `route ANY /x is taken by trigger "get"`},
			{ev: httpTrigger("other", "a", "/x/y", "")},
		}, func(t *testing.T, s *State) {
			if len(s.Triggers) != 3 {
				t.Fatalf("%d triggers", len(s.Triggers))
			}
		}},
		{"routes: parameters and prefixes conflict by shape, not by name", []step{
			{ev: deployed("a", "m")},
			{ev: httpTrigger("user", "a", "/users/{id}", "")},
			{ev: httpTrigger("user2", "a", "/users/{name}", "GET"), wantErr: ErrConflict,
				says: `route GET /users/{name} is taken by trigger "user" (its route ANY /users/{id} takes the same requests: parameter names do not tell routes apart)`},
			{ev: httpTrigger("me", "a", "/users/me", "")}, // exact wins
			{ev: httpTrigger("api", "a", "/api/*", "")},
			{ev: httpTrigger("api2", "a", "/api/*", "POST"), wantErr: ErrConflict, says: `route POST /api/* is taken by trigger "api": use another path or method, or delete trigger "api" first`},
			{ev: httpTrigger("v2", "a", "/api/v2/*", "")}, // longer wins
			{ev: httpTrigger("files", "a", "/users/{id}/files/*", "")},
			{ev: httpTrigger("files2", "a", "/users/{u}/files/*", "PUT"), wantErr: ErrConflict, says: `trigger "files"`},
			{ev: httpTrigger("form-get", "a", "/form/{id}", "GET")},
			{ev: httpTrigger("form-post", "a", "/form/{x}", "POST")}, // no method in common
		}, func(t *testing.T, s *State) {
			if len(s.Triggers) != 7 {
				t.Fatalf("%d triggers", len(s.Triggers))
			}
			var ce *route.ConflictError
			_, err := s.Apply(0, httpTrigger("again", "a", "/users/{x}", ""))
			if !errors.As(err, &ce) || ce.Other != "user" || ce.OtherRoute != "/users/{id}" {
				t.Fatalf("conflict %v: %+v", err, ce)
			}
		}},
		{"malformed routes", []step{
			{ev: deployed("a", "m")},
			{ev: httpTrigger("t", "a", "/users/{}", ""), wantErr: ErrInvalid, says: `--http-path "/users/{}": {} has no name`},
			{ev: httpTrigger("t", "a", "/users/{id", ""), wantErr: ErrInvalid, says: `"{id" opens a parameter it does not close`},
			{ev: httpTrigger("t", "a", "/api/*/x", ""), wantErr: ErrInvalid, says: "must be the last segment"},
			{ev: httpTrigger("t", "a", "/a/{id}/{id}", ""), wantErr: ErrInvalid, says: "{id} appears twice"},
			{ev: httpTrigger("t", "a", "/a b", ""), wantErr: ErrInvalid, says: "use letters, digits"},
		}, nil},
		{"bad trigger specs", []step{
			{ev: deployed("a", "m")},
			{ev: httpTrigger("Bad", "a", "/x", ""), wantErr: ErrInvalid, says: "lowercase"},
			{ev: httpTrigger("t", "a", "x", ""), wantErr: ErrInvalid, says: "absolute path"},
			{ev: httpTrigger("t", "a", "/a/../b", ""), wantErr: ErrInvalid},
			{ev: httpTrigger("t", "a", "/a//b", ""), wantErr: ErrInvalid},
			{ev: httpTrigger("t", "a", "/x", "get me"), wantErr: ErrInvalid, says: "HTTP method"},
			{ev: &Event{Type: EventTriggerCreated, Trigger: &Trigger{Name: "t", Function: "a"}}, wantErr: ErrInvalid, says: "no kind"},
		}, nil},
		{"delete a trigger frees its route", []step{
			{ev: deployed("a", "m")}, {ev: httpTrigger("t", "a", "/x", "")},
			{ev: deleted(EventTriggerDeleted, "t")}, {ev: httpTrigger("u", "a", "/x", "")},
			{ev: deleted(EventTriggerDeleted, "t"), wantErr: ErrNotFound},
		}, nil},
		{"unknown events and markers change nothing", []step{
			{ev: &Event{Type: "FromTheFuture"}}, {ev: &Event{Type: EventSync}},
		}, func(t *testing.T, s *State) {
			if len(s.Functions) != 0 || s.Seq != 2 {
				t.Fatalf("state %+v", s)
			}
		}},
		{"invalid function name", []step{
			{ev: deployed("UPPER", "m"), wantErr: ErrInvalid},
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewState()
			for i, st := range tc.steps {
				_, err := s.Apply(uint64(i+1), st.ev)
				if st.wantErr == nil && err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if st.wantErr != nil {
					if !errors.Is(err, st.wantErr) {
						t.Fatalf("step %d: error %v, want %v", i, err, st.wantErr)
					}
					if !strings.Contains(err.Error(), st.says) {
						t.Fatalf("step %d: error %q does not say %q", i, err, st.says)
					}
				}
			}
			if tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}

func TestApplyIsIdempotentBySequence(t *testing.T) {
	s := NewState()
	s.Apply(1, deployed("a", "m"))
	s.Apply(1, deployed("a", "m")) // redelivered
	s.Apply(2, deployed("a", "m"))
	if v := s.Functions["a"].Version; v != 2 {
		t.Fatalf("version %d after a redelivered event, want 2", v)
	}
}

func TestApplySkipsDuplicateEvents(t *testing.T) {
	s := NewState()
	ev := deployed("a", "m")
	ev.ID = "event-1"
	s.Apply(1, ev)
	s.Apply(2, ev) // the same event stored twice by a retried publish
	if v := s.Functions["a"].Version; v != 1 {
		t.Fatalf("version %d after a duplicate event, want 1", v)
	}
	for i := 0; i < dedupWindow+10; i++ {
		e := deployed("b", "m")
		e.ID = fmt.Sprint("other-", i)
		s.Apply(uint64(3+i), e)
	}
	if len(s.recent) != dedupWindow || len(s.ring) != dedupWindow {
		t.Fatalf("dedup window grew to %d", len(s.recent))
	}
}

// TestReplayRebuildsLiveState drives a live state with random operations,
// keeps the events as they would be stored (JSON), then replays them into
// a fresh state: both must be equal, at every prefix.
func TestReplayRebuildsLiveState(t *testing.T) {
	for seed := int64(1); seed <= 50; seed++ {
		rng := rand.New(rand.NewSource(seed))
		live := NewState()
		var log [][]byte
		names := []string{"a", "b", "c"}
		paths := []string{"/x", "/y"}
		methods := []string{"", "GET", "POST"}
		for i := 0; i < 200; i++ {
			var ev *Event
			switch rng.Intn(4) {
			case 0:
				ev = deployed(names[rng.Intn(3)], fmt.Sprintf("m%d", rng.Intn(4)))
			case 1:
				ev = deleted(EventFunctionDeleted, names[rng.Intn(3)])
			case 2:
				ev = httpTrigger(fmt.Sprintf("t%d", rng.Intn(4)), names[rng.Intn(3)], paths[rng.Intn(2)], methods[rng.Intn(3)])
			case 3:
				ev = deleted(EventTriggerDeleted, fmt.Sprintf("t%d", rng.Intn(4)))
			}
			ev.Time = t0.Add(time.Duration(i) * time.Second)
			ev.ID = fmt.Sprint("ev-", i)
			if i > 0 && rng.Intn(20) == 0 {
				ev.ID = fmt.Sprint("ev-", i-1) // a retried publish stored twice
			}
			data, _ := json.Marshal(ev)
			log = append(log, data)
			live.Apply(uint64(i+1), ev)
		}
		replayed := NewState()
		for i, data := range log {
			var ev Event
			if err := json.Unmarshal(data, &ev); err != nil {
				t.Fatal(err)
			}
			replayed.Apply(uint64(i+1), &ev)
		}
		if !reflect.DeepEqual(live, replayed) {
			t.Fatalf("seed %d: replayed state differs from the live one", seed)
		}
		for name, f := range live.Functions {
			if f.Version < 1 {
				t.Fatalf("seed %d: %s has version %d", seed, name, f.Version)
			}
		}
		for name, tr := range live.Triggers {
			if _, ok := live.Functions[tr.Function]; !ok {
				t.Fatalf("seed %d: trigger %s points at missing function %s", seed, name, tr.Function)
			}
		}
	}
}

func TestDurationJSON(t *testing.T) {
	var c Config
	if err := json.Unmarshal([]byte(`{"timeout":"1m30s"}`), &c); err != nil || time.Duration(c.Timeout) != 90*time.Second {
		t.Fatalf("%v %v", c.Timeout, err)
	}
	b, _ := json.Marshal(Config{Timeout: Duration(5 * time.Second)})
	if !strings.Contains(string(b), `"timeout":"5s"`) {
		t.Fatal(string(b))
	}
	if err := json.Unmarshal([]byte(`{"timeout":"soon"}`), &c); err == nil {
		t.Fatal("bad duration accepted")
	}
}
