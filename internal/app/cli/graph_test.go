package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/internal/graph"
)

// graphAPI serves GET /v1/graph, as the daemon does, for a small state,
// and GET /v1/topics.
func graphAPI(t *testing.T) string {
	t.Helper()
	topics := []eventlog.TopicInfo{{Name: "in", Messages: 2, Last: 2}, {Name: "side\x1b[31m", Messages: 1, Last: 9}}
	g := graph.Build(graph.Input{
		Functions: []*catalog.Function{{Name: "echo", Version: 2}},
		Triggers:  []*catalog.Trigger{{Name: "q", Function: "echo", Queue: &catalog.QueueSpec{Topic: "in", ErrorTopic: "dead"}}},
		Topics:    topics,
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/graph" && r.URL.Query().Get("format") == "dot":
			_ = graph.WriteDot(w, g)
		case r.URL.Path == "/v1/graph" && r.URL.Query().Get("format") == "":
			_ = json.NewEncoder(w).Encode(g)
		case r.URL.Path == "/v1/topics":
			_ = json.NewEncoder(w).Encode(topics)
		default:
			t.Errorf("unexpected request %s", r.URL)
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestGraphOutput(t *testing.T) {
	url := graphAPI(t)
	r := runCLI("", "graph", "--server", url)
	want := []string{
		"FROM                EDGE     TO",
		"function:echo       error    topic:dead     via q",
		"topic:in            feeds    trigger:q",
		"trigger:q           invokes  function:echo",
		`topic:side\x1b[31m                          no trigger; 1 messages`,
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != len(want) {
		t.Fatalf("sluice graph: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for i := range want {
		if strings.TrimRight(lines[i], " ") != want[i] {
			t.Errorf("line %d: %q; want %q", i, lines[i], want[i])
		}
	}
	r = runCLI("", "graph", "--server", url, "-o", "dot")
	if r.code != 0 || !strings.Contains(r.stdout, `  "topic:in" -> "trigger:q" [label="feeds"];`) {
		t.Fatalf("sluice graph -o dot: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI("", "graph", "--server", url, "-o", "svg")
	if r.code != 2 || !strings.Contains(r.stderr, "table, json, dot or mermaid") {
		t.Fatalf("sluice graph -o svg: exit %d %s", r.code, r.stderr)
	}
}

func TestTopicListOutput(t *testing.T) {
	url := graphAPI(t)
	r := runCLI("", "topic", "list", "--server", url)
	want := "TOPIC         MESSAGES  LAST\nin            2         2\nside\\x1b[31m  1         9\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("sluice topic list: exit %d\n%q\nwant\n%q\n%s", r.code, r.stdout, want, r.stderr)
	}
	r = runCLI("", "topic", "list", "--server", url, "-o", "json")
	var got []eventlog.TopicInfo
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &got) != nil || len(got) != 2 || got[1].Last != 9 {
		t.Fatalf("sluice topic list -o json: exit %d\n%s", r.code, r.stdout)
	}
}
