package api

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/internal/registry"
)

// configParams are the query parameters of a function's configuration,
// for PUT (deploy) and PATCH (update) /v1/functions/NAME.
var configParams = []string{"abi", "memory", "timeout", "concurrency", "max-input", "max-output", "cgi", "meta-env", "export", "env"}

// pluginConfigParam is an Extism plugin's config (K=V, repeated), in PUT
// only: a deploy gives the whole of it.
const pluginConfigParam = "config"

// unsetEnvParam removes env variables, in PATCH only.
const unsetEnvParam = "unset-env"

// ParseConfig reads a function's configuration from deploy query
// parameters: abi, memory (e.g. 64MiB), timeout (e.g. 30s), concurrency,
// max-input, max-output, cgi (true: run a WASI command as a CGI script),
// meta-env (true: give a WASI command the call's metadata as SLUICE_*
// variables), export (an Extism plugin's entry point), env (K=V, repeated),
// config (K=V, repeated: an Extism plugin's config_get). An unknown parameter is an
// error: a typo would otherwise deploy with a default.
func ParseConfig(q url.Values) (catalog.Config, error) {
	return applyConfig(catalog.Config{}, q, false)
}

// PatchConfig applies the query parameters of PATCH /v1/functions/NAME to
// a function's configuration: those of ParseConfig, each optional, each
// replacing the current value (an empty one puts the default back); env
// (K=V, repeated) adds or replaces variables and unset-env (K, repeated)
// removes them. At least one parameter must be given.
func PatchConfig(cur catalog.Config, q url.Values) (catalog.Config, error) {
	if len(q) == 0 {
		return cur, fmt.Errorf("%w: nothing to change: give one or more of %s, %s", catalog.ErrInvalid, strings.Join(configParams, ", "), unsetEnvParam)
	}
	return applyConfig(cur, q, true)
}

// applyConfig applies the parameters in q to cfg; patch leaves out those
// not given and takes unset-env.
func applyConfig(cfg catalog.Config, q url.Values, patch bool) (catalog.Config, error) {
	bad := func(param string, err error) (catalog.Config, error) {
		return cfg, fmt.Errorf("%w: %s: %v", catalog.ErrInvalid, param, err)
	}
	for _, param := range slices.Sorted(maps.Keys(q)) {
		if patch && param == pluginConfigParam {
			return bad(param, errors.New("an Extism plugin's config is given whole at deploy (fn deploy --config K=V): deploy the module again to change it"))
		}
		if !slices.Contains(configParams, param) && (!patch || param != unsetEnvParam) && (patch || param != pluginConfigParam) {
			known := strings.Join(configParams, ", ")
			if patch {
				known += ", " + unsetEnvParam
			} else {
				known += ", " + pluginConfigParam
			}
			return bad(param, fmt.Errorf("unknown parameter (the parameters are %s)", known))
		}
	}
	for _, param := range configParams[:len(configParams)-1] {
		if n := len(q[param]); n > 1 {
			return bad(param, fmt.Errorf("given %d times", n))
		}
	}
	// given returns a parameter's value and whether to apply it: always
	// for a deploy, when present for a patch
	given := func(param string) (string, bool) {
		_, present := q[param]
		return q.Get(param), present || !patch
	}
	if v, ok := given("abi"); ok {
		kind, err := abi.ParseKind(v)
		if err != nil {
			return bad("abi", err)
		}
		cfg.ABI = string(kind)
	}
	if v, ok := given("memory"); ok {
		cfg.Memory = 0
		if v != "" {
			n, err := host.ParseBytes(v)
			if err != nil {
				return bad("memory", err)
			}
			if n == 0 {
				return bad("memory", fmt.Errorf("want a size like 64MiB, got %q", v))
			}
			cfg.Memory = n
		}
	}
	if v, ok := given("timeout"); ok {
		cfg.Timeout = 0
		if v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return bad("timeout", err)
			}
			if d <= 0 {
				return bad("timeout", errors.New("must be positive"))
			}
			cfg.Timeout = catalog.Duration(d)
		}
	}
	if v, ok := given("concurrency"); ok {
		cfg.Concurrency = 0
		if v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return bad("concurrency", fmt.Errorf("want a positive integer, got %q", v))
			}
			cfg.Concurrency = n
		}
	}
	for param, dst := range map[string]*int{"max-input": &cfg.MaxInput, "max-output": &cfg.MaxOutput} {
		v, ok := given(param)
		if !ok {
			continue
		}
		*dst = 0
		if v != "" {
			n, err := host.ParseBytes(v)
			if err != nil || n == 0 || n > 1<<30 {
				return bad(param, fmt.Errorf("want a size between 1 B and 1 GiB, got %q", v))
			}
			*dst = int(n)
		}
	}
	if v, ok := given("cgi"); ok {
		cfg.CGI = false
		if v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return bad("cgi", fmt.Errorf("want true or false, got %q", v))
			}
			cfg.CGI = b
		}
	}
	if v, ok := given("meta-env"); ok {
		// recorded even when false: only a function deployed before the
		// setting existed has none (catalog.Config.MetaEnvOn)
		b := false
		if v != "" {
			var err error
			if b, err = strconv.ParseBool(v); err != nil {
				return bad("meta-env", fmt.Errorf("want true or false, got %q", v))
			}
		}
		cfg.MetaEnv = &b
	}
	if v, ok := given("export"); ok {
		cfg.Export = v
	}
	if !patch {
		cfg.PluginConfig = nil
		for _, kv := range q[pluginConfigParam] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return bad(pluginConfigParam, errors.New(`want KEY=VALUE, got a value without "KEY="`))
			}
			if cfg.PluginConfig == nil {
				cfg.PluginConfig = map[string]string{}
			}
			cfg.PluginConfig[k] = v
		}
	}
	env := maps.Clone(cfg.Env)
	if !patch {
		env = nil
	}
	for _, k := range q[unsetEnvParam] {
		if _, ok := env[k]; !ok {
			return bad(unsetEnvParam, fmt.Errorf("the function has no env variable %q", k))
		}
		delete(env, k)
	}
	for _, kv := range q["env"] {
		k, v, ok := strings.Cut(kv, "=")
		switch {
		case !ok || k == "":
			// the text is not echoed: it may be a secret typed without its name
			return bad("env", errors.New(`want KEY=VALUE, got a value without "KEY="`))
		case strings.ContainsRune(k, 0):
			return bad("env", fmt.Errorf("name %q holds a NUL byte", k))
		case strings.ContainsRune(v, 0):
			return bad("env", fmt.Errorf("the value of %s holds a NUL byte, which no program can read from its environment", k))
		case slices.Contains(q[unsetEnvParam], k):
			return bad("env", fmt.Errorf("%s is both set and unset", k))
		}
		if env == nil {
			env = map[string]string{}
		}
		env[k] = v
	}
	if len(env) == 0 {
		env = nil
	}
	cfg.Env = env
	spec := registry.Spec(&catalog.Function{Config: cfg})
	if err := spec.Limits.Validate(); err != nil {
		return bad("limits", err)
	}
	return cfg, nil
}

// sameConfig tells whether two configurations run a function the same way.
func sameConfig(a, b catalog.Config) bool {
	return a.ABI == b.ABI && a.CGI == b.CGI && a.MetaEnvOn() == b.MetaEnvOn() && EffectiveLimits(a) == EffectiveLimits(b) && maps.Equal(a.Env, b.Env) &&
		a.Export == b.Export && maps.Equal(a.PluginConfig, b.PluginConfig)
}
