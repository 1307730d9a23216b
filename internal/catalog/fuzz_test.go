package catalog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
)

// FuzzApply folds random JSON events, one per line, as a follower reads
// them from the channel (forged, malformed and future ones among them):
// the fold never panics, the state keeps its invariants after every
// event, and replaying the same events gives the same state.
//
//	go test -run '^$' -fuzz '^FuzzApply$' -fuzztime 10s ./internal/catalog/
func FuzzApply(f *testing.F) {
	m := mod("m")
	for _, seed := range []string{
		`{"type":"FunctionDeployed","id":"1","function":{"name":"a","module":"` + m + `","size":10,"chunks":1}}
{"type":"TriggerCreated","id":"2","trigger":{"name":"t","function":"a","http":{"path":"/x"}}}
{"type":"FunctionDeleted","id":"3","name":"a"}
{"type":"TriggerDeleted","id":"4","name":"t"}
{"type":"FunctionDeleted","id":"5","name":"a"}`,
		`{"type":"FunctionDeployed","function":{"name":"a","module":"` + m + `","size":10,"chunks":1,"config":{"env":{"K":"v"},"timeout":"1s"}}}
` + string(must(json.Marshal(workflow("w", "src", []string{"a"}, []string{"w"})))) + `
{"type":"TriggerCreated","trigger":{"name":"q","workflow":"w","queue":{"topic":"in","max_retries":1,"max_inflight":2,"ack_wait":"2s"}}}
{"type":"WorkflowDeleted","name":"w"}
{"type":"WorkflowDeleted","name":"w","force":true}
{"type":"FunctionDeployed","function":{"name":"a","module":"` + m + `","size":10,"chunks":1},"if_version":1}`,
		`{"type":"TriggerCreated","trigger":{"name":"c","function":"a","cron":{"schedule":"@every 1s"}}}
{"type":"FromTheFuture","whatever":[1,2,3]}
{"type":"Sync","id":"x"}
{"type":"Sync","id":"x"}
not json at all
{"type":"FunctionDeployed","function":{"name":"a","module":"../../x","size":-1,"chunks":99}}
{"type":"WorkflowCreated","workflow":{"name":"w","revision":"00","source":"x"}}
{"type":"TriggerCreated","trigger":{"name":"t","function":"a","workflow":"w","http":{"path":"/x"},"queue":{"topic":"sluice.catalog"}}}`,
		`{"type":"FunctionDeployed","function":null}
{"type":"TriggerCreated","trigger":{}}
{"type":"WorkflowCreated","workflow":{}}
{"type":"FunctionDeleted"}
{"type":null,"id":7,"time":"yesterday"}
[]
{}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := bytes.Split(data, []byte("\n"))
		if len(lines) > 64 {
			lines = lines[:64]
		}
		live := NewState()
		forcedAny := false
		for i, line := range lines {
			var ev Event
			if json.Unmarshal(line, &ev) != nil {
				continue // the follower skips it
			}
			forcedAny = forcedAny || ev.Force
			live.Apply(uint64(i+1), &ev)
			if err := invariants(live, !forcedAny); err != nil {
				t.Fatalf("after event %d %s: %v", i+1, line, err)
			}
		}
		replayed := NewState()
		for i, line := range lines {
			var ev Event
			if json.Unmarshal(line, &ev) == nil {
				replayed.Apply(uint64(i+1), &ev)
			}
		}
		if !reflect.DeepEqual(live, replayed) {
			t.Fatal("replaying the events gives another state")
		}
	})
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// invariants checks what every daemon relies on in a folded catalog;
// with refs, that every reference resolves (true while no delete was
// forced).
func invariants(s *State, refs bool) error {
	if len(s.ring) != len(s.recent) || len(s.ring) > dedupWindow {
		return fmt.Errorf("dedup window: %d ids in the ring, %d in the set", len(s.ring), len(s.recent))
	}
	for name, f := range s.Functions {
		switch {
		case f.Name != name || validateFunction(f) != nil:
			return fmt.Errorf("function %q: %+v: %v", name, f, validateFunction(f))
		case f.Version < 1 || f.Version > s.versions[name]:
			return fmt.Errorf("function %q at version %d, last given %d", name, f.Version, s.versions[name])
		}
		if ref, ok := s.Modules[f.Module]; !ok || ref.Size <= 0 {
			return fmt.Errorf("function %q: module %s unknown", name, f.Module)
		}
	}
	if err := historyInvariants(s); err != nil {
		return err
	}
	for name, w := range s.Workflows {
		sum := sha256.Sum256([]byte(w.Source))
		switch {
		case w.Name != name || validateWorkflow(w) != nil:
			return fmt.Errorf("workflow %q: %+v", name, w)
		case w.Revision != hex.EncodeToString(sum[:]) || s.Revisions[w.Revision] == nil:
			return fmt.Errorf("workflow %q: revision %s", name, w.Revision)
		case w.Version < 1 || w.Version > s.wfVersions[name]:
			return fmt.Errorf("workflow %q at version %d", name, w.Version)
		}
		if refs {
			for _, fn := range w.Functions {
				if s.Functions[fn] == nil {
					return fmt.Errorf("workflow %q uses function %q, which is gone", name, fn)
				}
			}
			for _, wf := range w.Workflows {
				if s.Workflows[wf] == nil {
					return fmt.Errorf("workflow %q uses workflow %q, which is gone", name, wf)
				}
			}
		}
	}
	for name, t := range s.Triggers {
		kinds := 0
		for _, set := range []bool{t.HTTP != nil, t.Queue != nil, t.Cron != nil} {
			if set {
				kinds++
			}
		}
		switch {
		case t.Name != name || ValidateName("trigger", name) != nil:
			return fmt.Errorf("trigger %q named %q", name, t.Name)
		case kinds != 1 || (t.Function == "") == (t.Workflow == ""):
			return fmt.Errorf("trigger %q: %d kinds, function %q, workflow %q", name, kinds, t.Function, t.Workflow)
		case (t.Group != "") != (t.Queue != nil || t.Cron != nil):
			return fmt.Errorf("trigger %q: group %q", name, t.Group)
		case t.Queue != nil && ValidateQueue(t.Queue) != nil, t.Cron != nil && ValidateCron(t.Cron) != nil, t.HTTP != nil && ValidateHTTP(t.HTTP) != nil,
			ValidateHTTPTarget(t) != nil:
			return fmt.Errorf("trigger %q has an invalid spec", name)
		case refs && t.Function != "" && s.Functions[t.Function] == nil, refs && t.Workflow != "" && s.Workflows[t.Workflow] == nil:
			return fmt.Errorf("trigger %q runs something gone", name)
		}
		for other, o := range s.Triggers {
			if other != name && t.HTTP != nil && o.HTTP != nil && t.HTTP.Path == o.HTTP.Path &&
				(t.HTTP.Method == "" || o.HTTP.Method == "" || t.HTTP.Method == o.HTTP.Method) {
				return fmt.Errorf("triggers %q and %q share route %s", name, other, t.HTTP.Path)
			}
		}
	}
	return nil
}
