package deploy

// Readers of the files under test: the binary's flags and environment
// variables, Kubernetes manifests, the Dockerfile, the systemd unit.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/internal/app/cli"
)

// --- The binary ---

// flagSpec is a flag as `sluice COMMAND --help` shows it.
type flagSpec struct {
	takesValue bool
	def        string // "" if the help shows no default
}

// help runs `sluice ARGS... --help` in this process, through the same
// code as the binary, and returns what it prints.
func help(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Main(context.Background(), append(slices.Clone(args), "--help"), strings.NewReader(""), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("sluice %s --help: exit %d: %s", strings.Join(args, " "), code, stderr.String())
	}
	return stdout.String() + stderr.String()
}

// pflag's usage lines: "  -o, --output string   text (default "table")",
// "      --insecure[=true|false]   text" (a bool).
var (
	flagLine    = regexp.MustCompile(`^\s+(?:-\w, )?--([a-z0-9][a-z0-9-]*)(?:\[=\S*\])?(?: (\S+))?(?:\s{2,}(.*))?$`)
	flagDefault = regexp.MustCompile(`\(default (.+)\)$`)
)

// flagsOf returns the flags of `sluice ARGS...`.
func flagsOf(t *testing.T, args ...string) map[string]flagSpec {
	t.Helper()
	flags := map[string]flagSpec{}
	for _, line := range strings.Split(help(t, args...), "\n") {
		m := flagLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		f := flagSpec{takesValue: m[2] != ""}
		if d := flagDefault.FindStringSubmatch(m[3]); d != nil {
			f.def = d[1]
			if s, err := strconv.Unquote(d[1]); err == nil {
				f.def = s
			}
		}
		flags[m[1]] = f
	}
	if len(flags) < 2 {
		t.Fatalf("sluice %s --help: read %d flags; has the help format changed?\n%s", strings.Join(args, " "), len(flags), help(t, args...))
	}
	return flags
}

var daemonFlagsCache map[string]flagSpec

func daemonFlags(t *testing.T) map[string]flagSpec {
	if daemonFlagsCache == nil {
		daemonFlagsCache = flagsOf(t, "daemon")
	}
	return daemonFlagsCache
}

// goRuntimeEnv are variables the Go runtime reads, not sluice's flags.
var goRuntimeEnv = []string{"GOMEMLIMIT", "GOMAXPROCS", "GOGC", "GODEBUG", "GOTRACEBACK"}

// envFlags returns the flags of `sluice CMD...` whose default the
// variable sets: those whose default `--help` shows changes with it.
func envFlags(t *testing.T, name string, cmd ...string) []string {
	t.Helper()
	base := flagsOf(t, cmd...)
	var out []string
	for _, v := range []string{"probe-value-of-" + name, "true"} { // a string, a bool
		prev, had := os.LookupEnv(name)
		os.Setenv(name, v)
		got := flagsOf(t, cmd...)
		if had {
			os.Setenv(name, prev)
		} else {
			os.Unsetenv(name)
		}
		for n, f := range got {
			if f.def != base[n].def && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
		if len(out) > 0 {
			break
		}
	}
	slices.Sort(out)
	return out
}

// readsEnv reports whether sluice reads the variable: the daemon, a client
// command, or the Go runtime.
func readsEnv(t *testing.T, name string) bool {
	t.Helper()
	return slices.Contains(goRuntimeEnv, name) || len(envFlags(t, name, "daemon")) > 0 || len(envFlags(t, name, "fn", "list")) > 0
}

// parseDaemonArgs parses the arguments of `sluice daemon` into flag
// values, with an error for each that the daemon would refuse.
func parseDaemonArgs(flags map[string]flagSpec, args []string) (map[string]string, []error) {
	vals := map[string]string{}
	var errs []error
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			errs = append(errs, fmt.Errorf("argument %q: sluice daemon takes only --flags", a))
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		f, ok := flags[name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("sluice daemon has no flag --%s", name))
			continue
		case f.takesValue && !hasVal && i+1 == len(args):
			errs = append(errs, fmt.Errorf("--%s wants a value", name))
			continue
		case f.takesValue && !hasVal:
			i++
			val = args[i]
		case !hasVal:
			val = "true"
		}
		vals[name] = val
	}
	return vals, errs
}

// daemonArgs is parseDaemonArgs, reporting the errors.
func daemonArgs(t *testing.T, where string, args []string) map[string]string {
	t.Helper()
	vals, errs := parseDaemonArgs(daemonFlags(t), args)
	for _, err := range errs {
		t.Errorf("%s: %v", where, err)
	}
	return vals
}

// setting returns a daemon setting: the flag if given, else the default.
func setting(t *testing.T, vals map[string]string, name string) string {
	t.Helper()
	if v, ok := vals[name]; ok {
		return v
	}
	f, ok := daemonFlags(t)[name]
	if !ok {
		t.Fatalf("sluice daemon has no flag --%s", name)
	}
	return f.def
}

func shutdownTimeout(t *testing.T, vals map[string]string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(setting(t, vals, "shutdown-timeout"))
	if err != nil || d <= 0 {
		t.Fatalf("--shutdown-timeout: %v %v", d, err)
	}
	return d
}

func hostPort(t *testing.T, where, addr string) (string, int) {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	port, perr := strconv.Atoi(p)
	if err != nil || perr != nil || port <= 0 {
		t.Fatalf("%s: %q is not host:port", where, addr)
	}
	return host, port
}

// --- The repository ---

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// goMod returns go.mod's module path, go version and the version it
// requires of a module.
// goMod reads go.mod: the module path, the Go release it needs as
// major.minor (an image tag such as golang:1.26 floats to that release's
// latest patch, which go 1.26.0 is satisfied by), and its requirements.
func goMod(t *testing.T) (module, goVersion string, require func(string) string) {
	t.Helper()
	text := readFile(t, filepath.Join("..", "go.mod"))
	get := func(re string) string {
		m := regexp.MustCompile(re).FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("go.mod: no match for %s", re)
		}
		return m[1]
	}
	return get(`(?m)^module (\S+)$`), get(`(?m)^go (\d+\.\d+)(?:\.\d+)?$`), func(mod string) string {
		return get(`(?m)^\s+` + regexp.QuoteMeta(mod) + ` (v\S+)`)
	}
}

// --- Kubernetes manifests ---

type meta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

// intOrString is a port (number or name) or a count or percentage.
type intOrString struct {
	isInt bool
	i     int
	s     string
}

func (v *intOrString) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a number or a name", n.Line)
	}
	if n.Tag == "!!int" {
		i, err := strconv.Atoi(n.Value)
		*v = intOrString{isInt: true, i: i}
		return err
	}
	*v = intOrString{s: n.Value}
	return nil
}

func (v intOrString) String() string {
	if v.isInt {
		return strconv.Itoa(v.i)
	}
	return v.s
}

type service struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   meta   `yaml:"metadata"`
	Spec       struct {
		Type                     string            `yaml:"type"`
		ClusterIP                string            `yaml:"clusterIP"`
		PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
		Selector                 map[string]string `yaml:"selector"`
		Ports                    []struct {
			Name       string      `yaml:"name"`
			Port       int         `yaml:"port"`
			TargetPort intOrString `yaml:"targetPort"`
			Protocol   string      `yaml:"protocol"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

// workload is a Deployment or a StatefulSet.
type workload struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   meta   `yaml:"metadata"`
	Spec       struct {
		Replicas            *int          `yaml:"replicas"`
		Selector            labelSelector `yaml:"selector"`
		ServiceName         string        `yaml:"serviceName"`
		PodManagementPolicy string        `yaml:"podManagementPolicy"`
		Strategy            *struct {
			Type          string `yaml:"type"`
			RollingUpdate *struct {
				MaxUnavailable *intOrString `yaml:"maxUnavailable"`
				MaxSurge       *intOrString `yaml:"maxSurge"`
			} `yaml:"rollingUpdate"`
		} `yaml:"strategy"`
		Template struct {
			Metadata meta    `yaml:"metadata"`
			Spec     podSpec `yaml:"spec"`
		} `yaml:"template"`
		VolumeClaimTemplates []claimTemplate `yaml:"volumeClaimTemplates"`
	} `yaml:"spec"`
}

type claimTemplate struct {
	Metadata meta `yaml:"metadata"`
	Spec     struct {
		AccessModes      []string `yaml:"accessModes"`
		StorageClassName *string  `yaml:"storageClassName"`
		Resources        struct {
			Requests map[string]string `yaml:"requests"`
		} `yaml:"resources"`
	} `yaml:"spec"`
}

type podSpec struct {
	AutomountServiceAccountToken  *bool `yaml:"automountServiceAccountToken"`
	EnableServiceLinks            *bool `yaml:"enableServiceLinks"`
	TerminationGracePeriodSeconds *int  `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot   *bool  `yaml:"runAsNonRoot"`
		RunAsUser      *int64 `yaml:"runAsUser"`
		RunAsGroup     *int64 `yaml:"runAsGroup"`
		FSGroup        *int64 `yaml:"fsGroup"`
		SeccompProfile *struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	TopologySpreadConstraints []struct {
		MaxSkew           int           `yaml:"maxSkew"`
		TopologyKey       string        `yaml:"topologyKey"`
		WhenUnsatisfiable string        `yaml:"whenUnsatisfiable"`
		LabelSelector     labelSelector `yaml:"labelSelector"`
	} `yaml:"topologySpreadConstraints"`
	Affinity *struct {
		PodAntiAffinity *struct {
			Preferred []struct {
				Weight int `yaml:"weight"`
				Term   struct {
					TopologyKey   string        `yaml:"topologyKey"`
					LabelSelector labelSelector `yaml:"labelSelector"`
				} `yaml:"podAffinityTerm"`
			} `yaml:"preferredDuringSchedulingIgnoredDuringExecution"`
		} `yaml:"podAntiAffinity"`
	} `yaml:"affinity"`
	Containers []container `yaml:"containers"`
	Volumes    []struct {
		Name     string `yaml:"name"`
		EmptyDir *struct {
			SizeLimit string `yaml:"sizeLimit"`
			Medium    string `yaml:"medium"`
		} `yaml:"emptyDir"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
	} `yaml:"volumes"`
}

type probe struct {
	HTTPGet *struct {
		Path string      `yaml:"path"`
		Port intOrString `yaml:"port"`
	} `yaml:"httpGet"`
	InitialDelaySeconds int `yaml:"initialDelaySeconds"`
	PeriodSeconds       int `yaml:"periodSeconds"`
	TimeoutSeconds      int `yaml:"timeoutSeconds"`
	FailureThreshold    int `yaml:"failureThreshold"`
}

type envVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		SecretKeyRef *struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"secretKeyRef"`
		FieldRef *struct {
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
		ResourceFieldRef *struct {
			Resource string `yaml:"resource"`
		} `yaml:"resourceFieldRef"`
	} `yaml:"valueFrom"`
}

type container struct {
	Name            string   `yaml:"name"`
	Image           string   `yaml:"image"`
	ImagePullPolicy string   `yaml:"imagePullPolicy"`
	Command         []string `yaml:"command"`
	Args            []string `yaml:"args"`
	Env             []envVar `yaml:"env"`
	Ports           []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	} `yaml:"ports"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	StartupProbe   *probe `yaml:"startupProbe"`
	Lifecycle      *struct {
		PreStop *struct {
			Sleep *struct {
				Seconds int `yaml:"seconds"`
			} `yaml:"sleep"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
		RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
		RunAsUser                *int64 `yaml:"runAsUser"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

// port resolves a port given by number or by name.
func (c *container) port(p intOrString) (int, bool) {
	if p.isInt {
		return p.i, true
	}
	for _, cp := range c.Ports {
		if cp.Name == p.s {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

func (c *container) hasPort(n int) bool {
	for _, cp := range c.Ports {
		if cp.ContainerPort == n {
			return true
		}
	}
	return false
}

// mountOf returns the volume holding path (mounted at it or a parent)
// and its mount path.
func (c *container) mountOf(path string) (volume, mountPath string) {
	best := ""
	for _, m := range c.VolumeMounts {
		mp := strings.TrimSuffix(m.MountPath, "/")
		if (path == mp || strings.HasPrefix(path, mp+"/")) && len(mp) > len(best) {
			volume, best = m.Name, mp
		}
	}
	return volume, best
}

// expand expands $(VAR) in an argument as Kubernetes does, from the
// container's env; fieldRef metadata.name is the pod's name.
func (c *container) expand(arg, pod string) string {
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
			v = pod
		}
		arg = strings.ReplaceAll(arg, "$("+e.Name+")", v)
	}
	return arg
}

type secret struct {
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   meta              `yaml:"metadata"`
	Type       string            `yaml:"type"`
	StringData map[string]string `yaml:"stringData"`
	Data       map[string]string `yaml:"data"`
}

type pdb struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   meta   `yaml:"metadata"`
	Spec       struct {
		MaxUnavailable *intOrString  `yaml:"maxUnavailable"`
		MinAvailable   *intOrString  `yaml:"minAvailable"`
		Selector       labelSelector `yaml:"selector"`
	} `yaml:"spec"`
}

type kustomization struct {
	APIVersion         string   `yaml:"apiVersion"`
	Kind               string   `yaml:"kind"`
	Namespace          string   `yaml:"namespace"`
	Resources          []string `yaml:"resources"`
	ConfigMapGenerator []struct {
		Name  string   `yaml:"name"`
		Files []string `yaml:"files"`
	} `yaml:"configMapGenerator"`
	Images []struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
	} `yaml:"images"`
}

const k8sDir = "kubernetes"

// manifests are the Kubernetes objects of deploy/kubernetes, by kind and
// name.
type manifests struct {
	files        []string // the YAML files holding objects
	kust         kustomization
	services     map[string]*service
	deployments  map[string]*workload
	statefulSets map[string]*workload
	secrets      map[string]*secret
	pdbs         map[string]*pdb
}

// kinds: the apiVersion each kind must have.
var kinds = map[string]string{
	"Service": "v1", "Secret": "v1", "Deployment": "apps/v1", "StatefulSet": "apps/v1",
	"PodDisruptionBudget": "policy/v1",
}

// strict decodes YAML, refusing fields the target does not know: a
// misspelt field is an error here, as it is to `kubectl apply`.
func strict(b []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(v)
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	return loadManifestsIn(t, k8sDir)
}

// loadManifestsIn reads the manifests of the kustomization in dir.
func loadManifestsIn(t *testing.T, k8sDir string) *manifests {
	t.Helper()
	m := &manifests{
		services: map[string]*service{}, deployments: map[string]*workload{}, statefulSets: map[string]*workload{},
		secrets: map[string]*secret{}, pdbs: map[string]*pdb{},
	}
	paths, err := filepath.Glob(filepath.Join(k8sDir, "*.y*ml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no manifests in %s: %v", k8sDir, err)
	}
	for _, path := range paths {
		b := []byte(readFile(t, path))
		if filepath.Base(path) == "kustomization.yaml" {
			if err := strict(b, &m.kust); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			continue
		}
		m.files = append(m.files, filepath.Base(path))
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for i := 0; ; i++ {
			var doc yaml.Node
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
				continue
			}
			var head struct {
				APIVersion string `yaml:"apiVersion"`
				Kind       string `yaml:"kind"`
				Metadata   meta   `yaml:"metadata"`
			}
			if err := doc.Decode(&head); err != nil {
				t.Fatalf("%s, document %d: %v", path, i+1, err)
			}
			where := fmt.Sprintf("%s: %s %q", path, head.Kind, head.Metadata.Name)
			if want, ok := kinds[head.Kind]; !ok {
				t.Fatalf("%s: a kind this test does not check; teach it", where)
			} else if head.APIVersion != want {
				t.Errorf("%s: apiVersion %q, want %q", where, head.APIVersion, want)
			}
			if head.Metadata.Name == "" {
				t.Errorf("%s, document %d: no metadata.name", path, i+1)
			}
			raw, err := yaml.Marshal(&doc)
			if err != nil {
				t.Fatal(err)
			}
			var target any
			switch head.Kind {
			case "Service":
				target = addNew(t, where, m.services, head.Metadata.Name)
			case "Deployment":
				target = addNew(t, where, m.deployments, head.Metadata.Name)
			case "StatefulSet":
				target = addNew(t, where, m.statefulSets, head.Metadata.Name)
			case "Secret":
				target = addNew(t, where, m.secrets, head.Metadata.Name)
			case "PodDisruptionBudget":
				target = addNew(t, where, m.pdbs, head.Metadata.Name)
			}
			if err := strict(raw, target); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
		}
	}
	return m
}

func addNew[T any](t *testing.T, where string, m map[string]*T, name string) *T {
	t.Helper()
	if _, dup := m[name]; dup {
		t.Fatalf("%s: defined twice", where)
	}
	v := new(T)
	m[name] = v
	return v
}

// selects reports whether a selector picks pods with these labels.
func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// workloads returns the Deployments and StatefulSets.
func (m *manifests) workloads() []*workload {
	return slices.Concat(slices.Collect(maps.Values(m.deployments)), slices.Collect(maps.Values(m.statefulSets)))
}

// servicesOf returns the Services that select a workload's pods.
func (m *manifests) servicesOf(w *workload) []*service {
	var out []*service
	for _, s := range m.services {
		if selects(s.Spec.Selector, w.Spec.Template.Metadata.Labels) {
			out = append(out, s)
		}
	}
	return out
}

// --- Dockerfile ---

type instruction struct {
	cmd, args string
	line      int
}

// dockerfile reads a Dockerfile's instructions, joining continued lines.
func dockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	var out []instruction
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(strings.NewReader(readFile(t, path)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasPrefix(line, "#") {
			continue // a comment inside a continued instruction
		}
		if s, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start})
		cur.Reset()
	}
	if cur.Len() > 0 {
		t.Fatalf("%s: a continued last line", path)
	}
	return out
}

// execForm parses a JSON-array (exec form) argument.
func execForm(t *testing.T, in instruction) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal([]byte(in.args), &v); err != nil || len(v) == 0 {
		t.Fatalf("line %d: %s %s: want the exec form [\"...\"]: the image has no shell", in.line, in.cmd, in.args)
	}
	return v
}

// --- systemd ---

// unitFile reads a systemd unit: section -> key -> values.
func unitFile(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	out := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(readFile(t, path)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			out[section] = map[string][]string{}
		case section == "":
			t.Fatalf("%s:%d: outside any section", path, n)
		case strings.HasSuffix(line, `\`):
			t.Fatalf("%s:%d: continued lines are not read by this test", path, n)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s:%d: not KEY=VALUE", path, n)
			}
			k = strings.TrimSpace(k)
			out[section][k] = append(out[section][k], strings.TrimSpace(v))
		}
	}
	return out
}

// systemdDuration parses a systemd time span: "60", "60s", "1min 30s".
func systemdDuration(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	r := strings.NewReplacer(" ", "", "min", "m", "sec", "s", "msec", "ms")
	return time.ParseDuration(r.Replace(s))
}

// envFile reads KEY=VALUE lines, and commented-out ones (#KEY=VALUE).
func envFile(t *testing.T, path string) (set map[string]string, mentioned []string) {
	t.Helper()
	set = map[string]string{}
	assign := regexp.MustCompile(`^(#?)([A-Z][A-Z0-9_]*)=(.*)$`)
	for i, line := range strings.Split(readFile(t, path), "\n") {
		line = strings.TrimSpace(line)
		m := assign.FindStringSubmatch(line)
		switch {
		case m != nil:
			mentioned = append(mentioned, m[2])
			if m[1] == "" {
				set[m[2]] = m[3]
			}
		case line != "" && !strings.HasPrefix(line, "#"):
			t.Errorf("%s:%d: not VAR=value: %q", path, i+1, line)
		}
	}
	return set, mentioned
}

// checkStopping: the kubelet's SIGTERM comes after preStop, then calls in
// flight may run --shutdown-timeout; the pod's terminationGracePeriodSeconds
// must outlast both, or the kubelet kills calls the daemon would finish.
func checkStopping(t *testing.T, where string, pod *podSpec, c *container, vals map[string]string) {
	t.Helper()
	grace := 30 * time.Second
	if pod.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	}
	preStop := time.Duration(0)
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	if st := shutdownTimeout(t, vals); grace <= preStop+st {
		t.Errorf("%s: terminationGracePeriodSeconds %v, not more than preStop %v + --shutdown-timeout %v", where, grace, preStop, st)
	}
}
