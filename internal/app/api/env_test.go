package api

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/catalog"
)

// What the API shows of the catalog channel masks env values as its
// function routes do; events without env pass unchanged.
func TestMaskCatalogEvent(t *testing.T) {
	ev := catalog.Event{Type: catalog.EventFunctionDeployed, ID: "x", Function: &catalog.Function{
		Name: "f", Config: catalog.Config{Env: map[string]string{"TOKEN": "hunter2", "EMPTY": ""}}}}
	data, _ := json.Marshal(ev)
	masked := maskCatalogEvent(data)
	if strings.Contains(string(masked), "hunter2") {
		t.Fatalf("env value shown: %s", masked)
	}
	var got catalog.Event
	if err := json.Unmarshal(masked, &got); err != nil {
		t.Fatal(err)
	}
	if got.Function.Config.Env["TOKEN"] != EnvMask || got.Function.Config.Env["EMPTY"] != EnvMask || got.ID != "x" {
		t.Fatalf("masked event %s", masked)
	}
	for _, plain := range []string{`{"type":"Sync","id":"y"}`, `not json`, `{"type":"FunctionDeployed","function":{"name":"f"}}`} {
		if out := maskCatalogEvent([]byte(plain)); string(out) != plain {
			t.Fatalf("%s became %s", plain, out)
		}
	}
}
