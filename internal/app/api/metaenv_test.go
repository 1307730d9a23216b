package api

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/internal/registry"
)

// A deploy records meta-env whether given or not, so that only a function
// deployed before the setting existed has none; such a WASI command keeps
// the SLUICE_* variables it always had, through updates that do not
// mention the setting, and a reactor never gets them.
func TestMetaEnvUpgrade(t *testing.T) {
	stored := func(t *testing.T, js string) catalog.Config {
		t.Helper()
		var fn catalog.Function
		if err := json.Unmarshal([]byte(js), &fn); err != nil {
			t.Fatal(err)
		}
		return fn.Config
	}
	// FunctionDeployed's function as a daemon wrote it before meta_env
	legacyWASI := stored(t, `{"name":"hello","version":3,"config":{"abi":"wasi","env":{"GREETING":"Bonjour"}}}`)
	legacyReactor := stored(t, `{"name":"upper","version":1,"config":{"abi":"reactor"}}`)
	for _, tc := range []struct {
		name string
		cfg  catalog.Config
		want bool
	}{
		{"legacy command", legacyWASI, true},
		{"legacy reactor", legacyReactor, false},
		{"command deployed now", stored(t, `{"config":{"abi":"wasi","meta_env":false}}`), false},
		{"command deployed with --meta-env", stored(t, `{"config":{"abi":"wasi","meta_env":true}}`), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := registry.Spec(&catalog.Function{Config: tc.cfg}).MetaEnv; got != tc.want {
				t.Fatalf("the host's MetaEnv is %v, want %v", got, tc.want)
			}
		})
	}

	cfg, err := ParseConfig(url.Values{"abi": {"wasi"}})
	if err != nil || cfg.MetaEnv == nil || *cfg.MetaEnv {
		t.Fatalf("a deploy without meta-env: %+v, %v; want meta_env recorded false", cfg.MetaEnv, err)
	}
	if data, _ := json.Marshal(cfg); !strings.Contains(string(data), `"meta_env":false`) {
		t.Fatalf("a deploy without meta-env is stored as %s, without meta_env:false", data)
	}
	cfg, err = ParseConfig(url.Values{"abi": {"wasi"}, "meta-env": {"true"}})
	if err != nil || !cfg.MetaEnvOn() {
		t.Fatalf("a deploy with meta-env=true: %+v, %v", cfg.MetaEnv, err)
	}
	if _, err := ParseConfig(url.Values{"meta-env": {"sometimes"}}); err == nil {
		t.Fatal("meta-env=sometimes was taken")
	}

	// an update that does not mention it keeps the legacy behaviour
	up, err := PatchConfig(legacyWASI, url.Values{"timeout": {"5s"}})
	if err != nil || up.MetaEnv != nil || !up.MetaEnvOn() {
		t.Fatalf("fn update --timeout of a legacy command: %+v, %v", up.MetaEnv, err)
	}
	// asking for what it has already changes nothing; turning it off does
	if up, err = PatchConfig(legacyWASI, url.Values{"meta-env": {"true"}}); err != nil || !sameConfig(up, legacyWASI) {
		t.Fatalf("fn update --meta-env of a legacy command: %+v, %v, want the same configuration", up.MetaEnv, err)
	}
	if up, err = PatchConfig(legacyWASI, url.Values{"meta-env": {"false"}}); err != nil || up.MetaEnvOn() || sameConfig(up, legacyWASI) {
		t.Fatalf("fn update --meta-env=false of a legacy command: %+v, %v", up.MetaEnv, err)
	}
}
