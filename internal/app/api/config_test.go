package api

import (
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/catalog"
)

func TestPatchConfig(t *testing.T) {
	cur := catalog.Config{ABI: "reactor", Timeout: catalog.Duration(time.Second), Concurrency: 4,
		Env: map[string]string{"A": "1", "B": "2"}}
	for _, tc := range []struct {
		name  string
		query string
		want  catalog.Config
		says  string // the error, if any
	}{
		{"timeout only", "timeout=5s", catalog.Config{ABI: "reactor", Timeout: catalog.Duration(5 * time.Second), Concurrency: 4,
			Env: map[string]string{"A": "1", "B": "2"}}, ""},
		{"env merges, unset-env removes", "env=B=3&env=C=4&unset-env=A", catalog.Config{ABI: "reactor", Timeout: catalog.Duration(time.Second),
			Concurrency: 4, Env: map[string]string{"B": "3", "C": "4"}}, ""},
		{"empty puts the default back", "concurrency=&timeout=&unset-env=A&unset-env=B", catalog.Config{ABI: "reactor"}, ""},
		{"abi and sizes", "abi=auto&memory=2MiB&max-input=1KiB&max-output=2KiB", catalog.Config{ABI: "auto", Memory: 2 << 20,
			Timeout: catalog.Duration(time.Second), Concurrency: 4, MaxInput: 1 << 10, MaxOutput: 2 << 10, Env: map[string]string{"A": "1", "B": "2"}}, ""},
		{"nothing", "", cur, "nothing to change"},
		{"a typo", "timout=5s", cur, `timout: unknown parameter (the parameters are abi, memory, timeout, concurrency, max-input, max-output, cgi, meta-env, export, env, unset-env)`},
		{"unset what is not set", "unset-env=Z", cur, `the function has no env variable "Z"`},
		{"set and unset", "env=A=2&unset-env=A", cur, "A is both set and unset"},
		{"twice", "timeout=1s&timeout=2s", cur, "timeout: given 2 times"},
		{"bad timeout", "timeout=soon", cur, "timeout"},
		{"zero memory", "memory=0", cur, "want a size like 64MiB"},
		{"env value with a NUL", "env=A=x%00y", cur, "the value of A holds a NUL byte"},
		{"env without a name", "env=hunter2", cur, `want KEY=VALUE, got a value without "KEY="`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := PatchConfig(cur, q)
			if tc.says != "" {
				if !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), tc.says) {
					t.Fatalf("error %v, want one saying %q", err, tc.says)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("the error repeats an env value: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if cur.Env["A"] != "1" || len(cur.Env) != 2 {
				t.Fatalf("the current configuration was changed: %+v", cur)
			}
		})
	}
	// a deploy takes every parameter but unset-env, and no unknown one
	if _, err := ParseConfig(url.Values{"unset-env": {"A"}}); err == nil || !strings.Contains(err.Error(), "unknown parameter") {
		t.Fatalf("deploy with unset-env: %v", err)
	}
	if cfg, err := ParseConfig(url.Values{"env": {"K=V=W"}, "timeout": {"2s"}}); err != nil || cfg.Env["K"] != "V=W" || cfg.ABI != "auto" {
		t.Fatalf("deploy: %+v, %v", cfg, err)
	}
}

// configQuery writes a configuration as the query parameters of a deploy.
func configQuery(cfg catalog.Config) url.Values {
	q := url.Values{"abi": {cfg.ABI}}
	if cfg.Memory != 0 {
		q.Set("memory", fmt.Sprint(cfg.Memory))
	}
	if cfg.Timeout != 0 {
		q.Set("timeout", time.Duration(cfg.Timeout).String())
	}
	if cfg.Concurrency != 0 {
		q.Set("concurrency", fmt.Sprint(cfg.Concurrency))
	}
	if cfg.MaxInput != 0 {
		q.Set("max-input", fmt.Sprint(cfg.MaxInput))
	}
	if cfg.MaxOutput != 0 {
		q.Set("max-output", fmt.Sprint(cfg.MaxOutput))
	}
	if cfg.MetaEnvOn() {
		q.Set("meta-env", "true")
	}
	for k, v := range cfg.Env {
		q.Add("env", k+"="+v)
	}
	return q
}

// FuzzPatchConfig applies random query strings as PUT and PATCH
// parameters: no panic; what is accepted is valid (limits the host
// takes, env a program can read) and can be deployed as is; a patch
// without unset-env applied twice changes nothing more.
//
//	go test -run '^$' -fuzz '^FuzzPatchConfig$' -fuzztime 10s ./internal/api/
func FuzzPatchConfig(f *testing.F) {
	for _, seed := range []string{
		"timeout=5s", "memory=2MiB&concurrency=3", "env=A=1&env=B=&unset-env=X", "max-input=1KiB&max-output=1GiB",
		"abi=wasi&memory=&timeout=", "memory=1e300GiB", "timeout=9999999999h", "concurrency=-1", "env==x", "env=A%00=1",
		"unset-env=X&unset-env=X", "memory=.&timeout=0", "meta-env=true", "meta-env=false&env=A=1", "meta-env=", "abi=REACTOR&env=K=V%00", "concurrency=99999999999999999999",
	} {
		f.Add(seed)
	}
	cur := catalog.Config{ABI: "wasi", Timeout: catalog.Duration(time.Second), Env: map[string]string{"X": "1"}}
	f.Fuzz(func(t *testing.T, query string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		check := func(cfg catalog.Config) {
			for k, v := range cfg.Env {
				if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
					t.Fatalf("env %q=%q accepted", k, v)
				}
			}
			again, err := ParseConfig(configQuery(cfg))
			if err != nil || !sameConfig(again, cfg) {
				t.Fatalf("%+v cannot be deployed as is: %+v, %v", cfg, again, err)
			}
		}
		if cfg, err := ParseConfig(q); err == nil {
			check(cfg)
		}
		cfg, err := PatchConfig(cur, q)
		if err != nil {
			return
		}
		check(cfg)
		if _, unset := q[unsetEnvParam]; !unset {
			if twice, err := PatchConfig(cfg, q); err != nil || !reflect.DeepEqual(twice, cfg) {
				t.Fatalf("applied twice: %+v, %v; once: %+v", twice, err, cfg)
			}
		}
	})
}
