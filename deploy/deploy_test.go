package deploy

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	natsd "github.com/nats-io/nats-server/v2/server"
	stand "github.com/nats-io/nats-streaming-server/server"
	"github.com/nats-io/nats-streaming-server/stores"

	"github.com/sluicehq/sluice/internal/app/cli"
	"github.com/sluicehq/sluice/internal/broker"
)

// These tests check that the deployment files agree with each other and
// with the binary: every flag and environment variable they give sluice
// exists (read from the real flag parser), ports, probes, Services, the
// Secret and the image name line up, and the NATS Streaming cluster's
// command line and configuration, parsed by nats-streaming-server itself,
// make the cluster sluice needs. They cannot build the image or talk to a
// cluster: nothing here needs Docker or Kubernetes.

// sluiceDeployment returns the Deployment running `sluice daemon` and
// its container.
func sluiceDeployment(t *testing.T, m *manifests) (*workload, *container) {
	t.Helper()
	var found []*workload
	for _, d := range m.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			if len(c.Args) > 0 && c.Args[0] == "daemon" {
				found = append(found, d)
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d Deployments run `sluice daemon`, want 1", len(found))
	}
	d := found[0]
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("Deployment %s: %d containers, want 1", d.Metadata.Name, n)
	}
	return d, &d.Spec.Template.Spec.Containers[0]
}

// natsStatefulSet returns the StatefulSet running NATS Streaming and its
// container.
func natsStatefulSet(t *testing.T, m *manifests) (*workload, *container) {
	t.Helper()
	var found []*workload
	for _, s := range m.statefulSets {
		for _, c := range s.Spec.Template.Spec.Containers {
			if strings.HasPrefix(c.Image, "nats-streaming:") {
				found = append(found, s)
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d StatefulSets run nats-streaming, want 1", len(found))
	}
	s := found[0]
	if n := len(s.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("StatefulSet %s: %d containers, want 1", s.Metadata.Name, n)
	}
	return s, &s.Spec.Template.Spec.Containers[0]
}

// natsServer parses a nats-streaming-server command line as the server
// does (v0.25.6's own option parser), the config file read from resolve.
func natsServer(t *testing.T, where string, args []string, resolve func(path string) string) (*stand.Options, *natsd.Options) {
	t.Helper()
	configFlag := regexp.MustCompile(`^--?(config|c|sc|stan_config)(?:=(.*))?$`)
	args = slices.Clone(args)
	for i := 0; i < len(args); i++ {
		m := configFlag.FindStringSubmatch(args[i])
		if m == nil {
			continue
		}
		if m[2] != "" {
			args[i] = "--" + m[1] + "=" + resolve(m[2])
		} else if i+1 < len(args) {
			args[i+1] = resolve(args[i+1])
			i++
		}
	}
	fs := flag.NewFlagSet("nats-streaming-server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	noop := func() {}
	sopts, nopts, err := stand.ConfigureOptions(fs, args, noop, noop, noop)
	if err != nil {
		t.Fatalf("%s: nats-streaming-server %s: %v", where, strings.Join(args, " "), err)
	}
	if fs.NArg() > 0 {
		t.Fatalf("%s: nats-streaming-server ignores %q", where, fs.Args())
	}
	return sopts, nopts
}

// natsPod parses the command line and configuration of the StatefulSet's
// pod number ordinal.
func natsPod(t *testing.T, m *manifests, s *workload, c *container, ordinal int) (*stand.Options, *natsd.Options) {
	t.Helper()
	pod := fmt.Sprintf("%s-%d", s.Metadata.Name, ordinal)
	if len(c.Command) > 0 {
		t.Fatalf("%s: command %q replaces the image's nats-streaming-server", pod, c.Command)
	}
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		args[i] = c.expand(a, pod)
	}
	resolve := func(path string) string {
		vol, mount := c.mountOf(path)
		var cm string
		for _, v := range s.Spec.Template.Spec.Volumes {
			if v.Name == vol && v.ConfigMap != nil {
				cm = v.ConfigMap.Name
			}
		}
		if cm == "" {
			t.Fatalf("%s: config %s is on no ConfigMap volume", pod, path)
		}
		key := strings.TrimPrefix(path, mount+"/")
		for _, g := range m.kust.ConfigMapGenerator {
			if g.Name != cm {
				continue
			}
			for _, f := range g.Files {
				k, file, ok := strings.Cut(f, "=")
				if !ok {
					k, file = filepath.Base(f), f
				}
				if k == key {
					return filepath.Join(k8sDir, file)
				}
			}
		}
		t.Fatalf("%s: config %s: no key %q in a ConfigMap %q made by kustomization.yaml", pod, path, key, cm)
		return ""
	}
	return natsServer(t, pod, args, resolve)
}

func TestManifestsParse(t *testing.T) {
	m := loadManifests(t)
	k := m.kust
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml: %s %s", k.APIVersion, k.Kind)
	}
	res := slices.Sorted(slices.Values(k.Resources))
	if !slices.Equal(res, m.files) {
		t.Errorf("kustomization.yaml lists %v; the manifests are %v", res, m.files)
	}
	generated := map[string]bool{}
	for _, g := range k.ConfigMapGenerator {
		generated[g.Name] = true
		for _, f := range g.Files {
			_, file, ok := strings.Cut(f, "=")
			if !ok {
				file = f
			}
			if _, err := os.Stat(filepath.Join(k8sDir, file)); err != nil {
				t.Errorf("configMapGenerator %s: %v", g.Name, err)
			}
		}
	}
	used := map[string]bool{}
	for _, w := range m.workloads() {
		pod := &w.Spec.Template.Spec
		if !selects(w.Spec.Selector.MatchLabels, w.Spec.Template.Metadata.Labels) {
			t.Errorf("%s %s: the selector does not match the pod labels", w.Kind, w.Metadata.Name)
		}
		volumes := map[string]bool{}
		for _, v := range pod.Volumes {
			volumes[v.Name] = true
			if v.ConfigMap != nil {
				used[v.ConfigMap.Name] = true
				if !generated[v.ConfigMap.Name] {
					t.Errorf("%s %s: ConfigMap %q is made nowhere", w.Kind, w.Metadata.Name, v.ConfigMap.Name)
				}
			}
			if v.Secret != nil && m.secrets[v.Secret.SecretName] == nil {
				t.Errorf("%s %s: no Secret %q", w.Kind, w.Metadata.Name, v.Secret.SecretName)
			}
		}
		for _, c := range w.Spec.VolumeClaimTemplates {
			volumes[c.Metadata.Name] = true
		}
		for _, c := range pod.Containers {
			for _, vm := range c.VolumeMounts {
				if !volumes[vm.Name] {
					t.Errorf("%s %s: mounts an undefined volume %q", w.Kind, w.Metadata.Name, vm.Name)
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					ref := e.ValueFrom.SecretKeyRef
					s := m.secrets[ref.Name]
					if s == nil {
						if keys, ok := readmeSecrets(t)[ref.Name]; ok {
							if !slices.Contains(keys, ref.Key) {
								t.Errorf("%s %s: env %s reads key %q of Secret %q, which README.md makes with keys %v", w.Kind, w.Metadata.Name, e.Name, ref.Key, ref.Name, keys)
							}
							continue
						}
						t.Errorf("%s %s: env %s reads Secret %q, which is defined nowhere (neither in the manifests nor by a kubectl create secret in README.md)", w.Kind, w.Metadata.Name, e.Name, ref.Name)
						continue
					}
					_, inString := s.StringData[ref.Key]
					_, inData := s.Data[ref.Key]
					if !inString && !inData {
						t.Errorf("%s %s: env %s reads key %q of Secret %q, which has no such key", w.Kind, w.Metadata.Name, e.Name, ref.Key, ref.Name)
					}
				}
			}
		}
	}
	for name := range generated {
		if !used[name] {
			t.Errorf("kustomization.yaml makes ConfigMap %q, which nothing mounts", name)
		}
	}
	for _, s := range m.services {
		if len(s.Spec.Selector) == 0 {
			t.Errorf("Service %s selects nothing", s.Metadata.Name)
		}
	}
	for _, p := range m.pdbs {
		n := 0
		for _, w := range m.workloads() {
			if selects(p.Spec.Selector.MatchLabels, w.Spec.Template.Metadata.Labels) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("PodDisruptionBudget %s selects the pods of %d workloads, want 1", p.Metadata.Name, n)
		}
	}
}

func TestSluiceDeployment(t *testing.T) {
	m := loadManifests(t)
	d, c := sluiceDeployment(t, m)
	pod := &d.Spec.Template.Spec
	where := "Deployment " + d.Metadata.Name
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		t.Errorf("%s: want replicas, several: the daemons share the work", where)
	}
	if len(c.Command) > 0 {
		t.Errorf("%s: command %q: the image's entrypoint is sluice", where, c.Command)
	}
	vals := daemonArgs(t, where, c.Args[1:])

	// Rather not beside a NATS Streaming pod: one machine lost would be
	// two faults at once (deploy/README.md). The selector must pick the
	// StatefulSet's pods.
	ss, _ := natsStatefulSet(t, m)
	apart := false
	if a := pod.Affinity; a != nil && a.PodAntiAffinity != nil {
		for _, p := range a.PodAntiAffinity.Preferred {
			sel := p.Term.LabelSelector.MatchLabels
			matches := len(sel) > 0
			for k, v := range sel {
				matches = matches && ss.Spec.Template.Metadata.Labels[k] == v
			}
			apart = apart || matches && p.Term.TopologyKey == "kubernetes.io/hostname" && p.Weight > 0
		}
	}
	if !apart {
		t.Errorf("%s: no preferred pod anti-affinity by hostname to the pods of StatefulSet %s", where, ss.Metadata.Name)
	}

	// The API port: the container's, the probes', the Service's.
	host, port := hostPort(t, where+": --listen", setting(t, vals, "listen"))
	if host != "0.0.0.0" && host != "" && host != "::" {
		t.Errorf("%s: --listen on %q: probes and the Service reach the pod's address, not loopback", where, host)
	}
	if !c.hasPort(port) {
		t.Errorf("%s: the container does not declare port %d (--listen)", where, port)
	}
	for _, p := range []struct {
		name, path string
		probe      *probe
	}{{"readiness", "/readyz", c.ReadinessProbe}, {"liveness", "/healthz", c.LivenessProbe}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: no httpGet %s probe", where, p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			t.Errorf("%s: %s probe on %s, want %s", where, p.name, p.probe.HTTPGet.Path, p.path)
		}
		if n, ok := c.port(p.probe.HTTPGet.Port); !ok || n != port {
			t.Errorf("%s: %s probe on port %s, the API is on %d", where, p.name, p.probe.HTTPGet.Port, port)
		}
	}
	services := m.servicesOf(d)
	if len(services) == 0 {
		t.Errorf("%s: no Service selects its pods", where)
	}
	for _, s := range services {
		for _, sp := range s.Spec.Ports {
			if n, ok := c.port(sp.TargetPort); !ok || n != port {
				t.Errorf("Service %s: port %s targets %s, the API is on %d", s.Metadata.Name, sp.Name, sp.TargetPort, port)
			}
		}
	}

	// The token: required beyond loopback, from the Secret.
	if vals["insecure"] == "true" {
		t.Errorf("%s: --insecure: use the token", where)
	}
	if _, ok := vals["token"]; ok {
		t.Errorf("%s: --token on the command line shows it to anyone who reads the Deployment: use SLUICE_TOKEN from the Secret", where)
	}
	var token *envVar
	for i, e := range c.Env {
		if !readsEnv(t, e.Name) {
			t.Errorf("%s: env %s: sluice reads no such variable", where, e.Name)
		}
		if e.Name == "SLUICE_TOKEN" {
			token = &c.Env[i]
		}
	}
	if token == nil || token.ValueFrom == nil || token.ValueFrom.SecretKeyRef == nil {
		t.Errorf("%s: SLUICE_TOKEN does not come from a Secret", where)
	} else if s := m.secrets[token.ValueFrom.SecretKeyRef.Name]; s != nil && s.StringData[token.ValueFrom.SecretKeyRef.Key] != "" {
		t.Errorf("Secret %s: the template ships a token; leave it empty, so that a forgotten one stops the daemons instead of being the same everywhere", s.Metadata.Name)
	}

	// NATS Streaming: the cluster's client Service, its cluster id.
	ss, nc := natsStatefulSet(t, m)
	sopts, nopts := natsPod(t, m, ss, nc, 0)
	natsURL := setting(t, vals, "nats")
	if natsURL == "" {
		t.Fatalf("%s: no --nats: each daemon would embed its own NATS Streaming", where)
	}
	for _, u := range strings.Split(natsURL, ",") {
		pu, err := url.Parse(u)
		if err != nil || pu.Scheme != "nats" || pu.Port() == "" {
			t.Errorf("%s: --nats %q: want nats://SERVICE:PORT", where, u)
			continue
		}
		name, _, _ := strings.Cut(pu.Hostname(), ".")
		s := m.services[name]
		if s == nil {
			t.Errorf("%s: --nats %s: no Service %q", where, u, name)
			continue
		}
		if !selects(s.Spec.Selector, ss.Spec.Template.Metadata.Labels) {
			t.Errorf("Service %s does not select the NATS Streaming pods", name)
		}
		if s.Spec.ClusterIP == "None" {
			t.Errorf("%s: --nats %s: a headless Service; use the client Service", where, u)
		}
		found := false
		for _, sp := range s.Spec.Ports {
			if strconv.Itoa(sp.Port) != pu.Port() {
				continue
			}
			found = true
			if n, ok := nc.port(sp.TargetPort); !ok || n != nopts.Port {
				t.Errorf("Service %s: port %d targets %s; NATS Streaming serves clients on %d", name, sp.Port, sp.TargetPort, nopts.Port)
			}
		}
		if !found {
			t.Errorf("%s: --nats %s: Service %s has no port %s", where, u, name, pu.Port())
		}
	}
	if id := setting(t, vals, "cluster-id"); id != sopts.ID {
		t.Errorf("%s: --cluster-id %q, NATS Streaming's cluster id is %q", where, id, sopts.ID)
	}

	// The NATS credentials: the cluster's user, and the password from the
	// Secret the cluster reads it from, by environment (a flag shows in
	// the Deployment and in ps).
	for _, f := range []string{"nats-password", "nats-token"} {
		if _, ok := vals[f]; ok {
			t.Errorf("%s: --%s on the command line: use the environment, from the Secret", where, f)
		}
	}
	if strings.Contains(natsURL, "@") {
		t.Errorf("%s: --nats carries credentials: use SLUICE_NATS_USER and SLUICE_NATS_PASSWORD", where)
	}
	natsRef := natsPasswordRef(t, "StatefulSet "+ss.Metadata.Name, nc)
	user, password := "", (*envVar)(nil)
	for i, e := range c.Env {
		switch flags := envFlags(t, e.Name, "daemon"); {
		case slices.Equal(flags, []string{"nats-user"}):
			user = e.Value
		case slices.Equal(flags, []string{"nats-password"}):
			password = &c.Env[i]
		}
	}
	if user != nopts.Username {
		t.Errorf("%s: the NATS user is %q (SLUICE_NATS_USER), the cluster's is %q", where, user, nopts.Username)
	}
	if password == nil || password.ValueFrom == nil || password.ValueFrom.SecretKeyRef == nil {
		t.Errorf("%s: the NATS password (SLUICE_NATS_PASSWORD) does not come from a Secret", where)
	} else if ref := password.ValueFrom.SecretKeyRef; ref.Name != natsRef.secret || ref.Key != natsRef.key {
		t.Errorf("%s: the NATS password is key %q of Secret %q; the cluster's is key %q of %q", where, ref.Key, ref.Name, natsRef.key, natsRef.secret)
	}

	// The data dir: caches only, on an emptyDir.
	data := setting(t, vals, "data")
	vol, _ := c.mountOf(data)
	emptyDir := false
	for _, v := range pod.Volumes {
		emptyDir = emptyDir || v.Name == vol && v.EmptyDir != nil
	}
	if !emptyDir {
		t.Errorf("%s: --data %s is not on an emptyDir volume (the root file system is read-only; the daemon is stateless)", where, data)
	}

	checkStopping(t, where, pod, c, vals)

	// Non-root, read-only, no privileges, with resources.
	sc := pod.SecurityContext
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("%s: want runAsNonRoot and a non-root runAsUser", where)
	} else if uid := imageUser(t); *sc.RunAsUser != int64(uid) {
		t.Errorf("%s: runAsUser %d, the image's user is %d", where, *sc.RunAsUser, uid)
	}
	checkContainerHardening(t, where, c)
	for _, s := range m.services {
		env := strings.ToUpper(strings.ReplaceAll(s.Metadata.Name, "-", "_"))
		if strings.HasPrefix(env, "SLUICE") && (pod.EnableServiceLinks == nil || *pod.EnableServiceLinks) {
			t.Errorf("%s: Service %s would set %s_SERVICE_HOST, %s_PORT... among sluice's settings: set enableServiceLinks: false", where, s.Metadata.Name, env, env)
		}
	}
}

func checkContainerHardening(t *testing.T, where string, c *container) {
	t.Helper()
	csc := c.SecurityContext
	if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		t.Errorf("%s: want readOnlyRootFilesystem", where)
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Errorf("%s: want allowPrivilegeEscalation: false", where)
	}
	if !slices.Contains(csc.Capabilities.Drop, "ALL") {
		t.Errorf("%s: want capabilities drop [ALL]", where)
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("%s: want cpu and memory requests and a memory limit: %+v", where, c.Resources)
	}
}

func TestNATSStreamingCluster(t *testing.T) {
	m := loadManifests(t)
	s, c := natsStatefulSet(t, m)
	where := "StatefulSet " + s.Metadata.Name

	_, _, require := goMod(t)
	version := strings.TrimPrefix(require("github.com/nats-io/nats-streaming-server"), "v")
	if tag := strings.TrimPrefix(c.Image, "nats-streaming:"); tag != version && !strings.HasPrefix(tag, version+"-") {
		t.Errorf("%s: image %s; sluice is built against nats-streaming-server %s", where, c.Image, version)
	}
	if s.Spec.Replicas == nil || *s.Spec.Replicas != 3 {
		t.Fatalf("%s: want replicas: 3 (a Raft cluster that survives one node down)", where)
	}
	replicas := *s.Spec.Replicas
	if s.Spec.PodManagementPolicy != "Parallel" {
		t.Errorf("%s: podManagementPolicy %q: the nodes must start together to elect a leader", where, s.Spec.PodManagementPolicy)
	}
	headless := m.services[s.Spec.ServiceName]
	switch {
	case headless == nil:
		t.Fatalf("%s: no Service %q (serviceName)", where, s.Spec.ServiceName)
	case headless.Spec.ClusterIP != "None":
		t.Errorf("Service %s: not headless: pods get no DNS names", headless.Metadata.Name)
	case !headless.Spec.PublishNotReadyAddresses:
		t.Errorf("Service %s: without publishNotReadyAddresses no node finds another before one is ready", headless.Metadata.Name)
	case !selects(headless.Spec.Selector, s.Spec.Template.Metadata.Labels):
		t.Errorf("Service %s does not select the pods", headless.Metadata.Name)
	}
	budget := false
	for _, p := range m.pdbs {
		if !selects(p.Spec.Selector.MatchLabels, s.Spec.Template.Metadata.Labels) {
			continue
		}
		budget = true
		up := -1
		switch {
		case p.Spec.MaxUnavailable != nil && p.Spec.MaxUnavailable.isInt:
			up = replicas - p.Spec.MaxUnavailable.i
		case p.Spec.MinAvailable != nil && p.Spec.MinAvailable.isInt:
			up = p.Spec.MinAvailable.i
		}
		if up <= replicas/2 {
			t.Errorf("PodDisruptionBudget %s lets the cluster lose its quorum", p.Metadata.Name)
		}
	}
	if !budget {
		t.Errorf("%s: no PodDisruptionBudget", where)
	}

	pods := make([]string, replicas)
	for i := range pods {
		pods[i] = fmt.Sprintf("%s-%d", s.Metadata.Name, i)
	}
	dataVolume, dataMount := "", ""
	for i, pod := range pods {
		sopts, nopts := natsPod(t, m, s, c, i)
		cl := sopts.Clustering
		if !cl.Clustered || cl.NodeID != pod {
			t.Errorf("%s: clustered %v, node id %q, want the pod name", pod, cl.Clustered, cl.NodeID)
		}
		if all := slices.Sorted(slices.Values(append([]string{cl.NodeID}, cl.Peers...))); !slices.Equal(all, pods) {
			t.Errorf("%s: node and peers %v, want %v", pod, all, pods)
		}
		if sopts.StoreType != stores.TypeFile {
			t.Errorf("%s: store %s, want file", pod, sopts.StoreType)
		}
		for _, dir := range []string{sopts.FilestoreDir, cl.RaftLogPath} {
			vol, mount := c.mountOf(dir)
			if vol == "" || !slices.ContainsFunc(s.Spec.VolumeClaimTemplates, func(v claimTemplate) bool {
				return v.Metadata.Name == vol && v.Spec.Resources.Requests["storage"] != ""
			}) {
				t.Errorf("%s: %q is not on a persistent volume claim with a storage request", pod, dir)
			}
			dataVolume, dataMount = vol, mount
		}
		if sopts.FilestoreDir == "" || cl.RaftLogPath == "" || sopts.FilestoreDir == cl.RaftLogPath {
			t.Errorf("%s: store %q and Raft log %q: want two directories", pod, sopts.FilestoreDir, cl.RaftLogPath)
		}

		// The NATS layer: its ports are the container's, and the routes
		// join every pod through the headless Service.
		for _, p := range []int{nopts.Port, nopts.Cluster.Port, nopts.HTTPPort} {
			if p <= 0 || !c.hasPort(p) {
				t.Errorf("%s: the server listens on %d, which the container does not declare", pod, p)
			}
		}
		var routes []string
		for _, r := range nopts.Routes {
			if r.Port() != strconv.Itoa(nopts.Cluster.Port) {
				t.Errorf("%s: route %s: the cluster port is %d", pod, r, nopts.Cluster.Port)
			}
			host := r.Hostname()
			for _, suffix := range []string{".svc.cluster.local", ".svc"} {
				host = strings.TrimSuffix(host, suffix)
			}
			p, svc, _ := strings.Cut(host, ".")
			svc, _, _ = strings.Cut(svc, ".") // less the namespace
			if svc != headless.Metadata.Name {
				t.Errorf("%s: route %s is not through the headless Service %s", pod, r, headless.Metadata.Name)
			}
			routes = append(routes, p)
		}
		if slices.Sort(routes); !slices.Equal(routes, pods) {
			t.Errorf("%s: routes to %v, want %v", pod, routes, pods)
		}

		// Clients and routes authenticate, with the password of a Secret.
		if nopts.Username == "" || nopts.Authorization != "" {
			t.Errorf("%s: clients authenticate with user %q, token set %v: want a user and a password", pod, nopts.Username, nopts.Authorization != "")
		}
		if nopts.Cluster.Username != nopts.Username {
			t.Errorf("%s: routes authenticate as %q, clients as %q: want routes to need the credentials too", pod, nopts.Cluster.Username, nopts.Username)
		}
		for _, r := range nopts.Routes {
			if r.User.Username() != nopts.Cluster.Username {
				t.Errorf("%s: route %s does not present the cluster's user %q", pod, r.Redacted(), nopts.Cluster.Username)
			}
		}

		// Limits: those of the embedded server, or the server drops what
		// sluice keeps for good.
		got, want := sopts.StoreLimits, broker.StoreLimits()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: store limits differ from the embedded server's:\n got %s\nwant %s", pod, limitsString(got), limitsString(want))
		}
		if err := got.Build(); err != nil {
			t.Errorf("%s: store limits: %v", pod, err)
		}
		// A dead daemon's queue subscriptions hold their messages until the
		// server gives up on it: seconds, as on the embedded server (the
		// server's default is five minutes).
		if hb := sopts.ClientHBInterval*time.Duration(sopts.ClientHBFailCount) + sopts.ClientHBTimeout; hb > 10*time.Second {
			t.Errorf("%s: a dead client is dropped after %v, want seconds", pod, hb)
		}

		for _, p := range []struct {
			name  string
			probe *probe
		}{{"readiness", c.ReadinessProbe}, {"liveness", c.LivenessProbe}} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				t.Errorf("%s: no httpGet %s probe", where, p.name)
				continue
			}
			if n, ok := c.port(p.probe.HTTPGet.Port); !ok || n != nopts.HTTPPort || p.probe.HTTPGet.Path != "/healthz" {
				t.Errorf("%s: %s probe on %s %s, the monitoring port is %d", where, p.name, p.probe.HTTPGet.Port, p.probe.HTTPGet.Path, nopts.HTTPPort)
			}
		}
	}
	if dataMount == "" || dataVolume == "" {
		t.Errorf("%s: no data volume", where)
	}
	// Every password on the command line (--pass, --cluster, --routes) is
	// $(VAR) of one env var read from a Secret: none is written in the
	// manifest.
	ref := natsPasswordRef(t, where, c)
	for _, a := range c.Args {
		name, val, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		switch name {
		case "pass":
			if val != "$("+ref.env+")" {
				t.Errorf("%s: --pass=%s, want $(%s)", where, val, ref.env)
			}
		case "cluster", "routes":
			for _, u := range strings.Split(val, ",") {
				pu, err := url.Parse(u)
				if err != nil || pu.User == nil {
					t.Errorf("%s: --%s %s: want nats://USER:$(%s)@HOST:PORT", where, name, u, ref.env)
					continue
				}
				if pw, _ := pu.User.Password(); pw != "$("+ref.env+")" {
					t.Errorf("%s: --%s %s: want the password $(%s)", where, name, pu.Redacted(), ref.env)
				}
			}
		}
	}

	pod := &s.Spec.Template.Spec
	sc := pod.SecurityContext
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 || sc.FSGroup == nil {
		t.Errorf("%s: want runAsNonRoot, a non-root runAsUser and an fsGroup (to write the volume)", where)
	}
	checkContainerHardening(t, where, c)
}

func limitsString(l stores.StoreLimits) string {
	s := fmt.Sprintf("max_channels %d, global %+v, channels {", l.MaxChannels, l.ChannelLimits)
	for _, k := range slices.Sorted(maps.Keys(l.PerChannel)) {
		s += fmt.Sprintf(" %s: %+v", k, *l.PerChannel[k])
	}
	return s + " }"
}

// image is what deploy/Dockerfile builds.
type image struct {
	uid     int
	exposed []int
	volumes []string
	cmd     []string
}

func dockerImage(t *testing.T) image {
	t.Helper()
	module, goVersion, _ := goMod(t)
	ins := dockerfile(t, "Dockerfile")
	var stages [][]instruction
	var names []string
	for _, in := range ins {
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			f = slices.DeleteFunc(f, func(s string) bool { return strings.HasPrefix(s, "--") })
			name := ""
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				name = f[2]
			} else if len(f) != 1 {
				t.Fatalf("Dockerfile:%d: FROM %s", in.line, in.args)
			}
			stages = append(stages, []instruction{{cmd: "FROM", args: f[0], line: in.line}})
			names = append(names, name)
			continue
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("Dockerfile:%d: %s before FROM", in.line, in.cmd)
			}
			continue
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: %d stages, want a build stage and a final one", len(stages))
	}

	// The build: go.mod's Go, a static, stripped, reproducible binary.
	build, final := stages[0], stages[len(stages)-1]
	if from := build[0].args; !strings.HasPrefix(from, "golang:"+goVersion) {
		t.Errorf("Dockerfile: builds with %s; go.mod says go %s", from, goVersion)
	}
	binary := ""
	for _, in := range build {
		if in.cmd != "RUN" || !strings.Contains(in.args, "go build") {
			continue
		}
		for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/sluice"} {
			if !strings.Contains(in.args, want) {
				t.Errorf("Dockerfile:%d: go build without %s", in.line, want)
			}
		}
		ld := regexp.MustCompile(`-ldflags[= ]"([^"]*)"`).FindStringSubmatch(in.args)
		if ld == nil || !slices.Contains(strings.Fields(ld[1]), "-s") || !slices.Contains(strings.Fields(ld[1]), "-w") {
			t.Errorf("Dockerfile:%d: want -ldflags \"-s -w\"", in.line)
		}
		if ld != nil {
			_ = cli.Version // what -X sets
			for _, x := range regexp.MustCompile(`-X (\S+)=`).FindAllStringSubmatch(ld[1], -1) {
				if x[1] != module+"/internal/app/cli.Version" {
					t.Errorf("Dockerfile:%d: -X %s: the version is %s/internal/app/cli.Version", in.line, x[1], module)
				}
			}
		}
		if o := regexp.MustCompile(`-o (\S+)`).FindStringSubmatch(in.args); o != nil {
			binary = o[1]
		}
	}
	if binary == "" {
		t.Fatalf("Dockerfile: no `go build -o FILE` in the build stage")
	}

	// The final stage: static and non-root, sluice its entrypoint.
	base := final[0].args
	if !(strings.Contains(base, "distroless/static") && strings.HasSuffix(base, ":nonroot")) && base != "scratch" {
		t.Errorf("Dockerfile: final stage FROM %s, want distroless static nonroot (or scratch)", base)
	}
	var img image
	installed, entrypoint := "", []string(nil)
	for _, in := range final {
		switch in.cmd {
		case "COPY":
			f := strings.Fields(in.args)
			if slices.Contains(f, "--from="+names[0]) && slices.Contains(f, binary) {
				installed = f[len(f)-1]
			}
		case "USER":
			u, _, _ := strings.Cut(in.args, ":")
			uid, err := strconv.Atoi(u)
			if err != nil || uid == 0 {
				t.Errorf("Dockerfile:%d: USER %s: want a numeric non-root uid (runAsNonRoot cannot check a name)", in.line, in.args)
			}
			img.uid = uid
		case "EXPOSE":
			for _, p := range strings.Fields(in.args) {
				n, err := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
				if err != nil {
					t.Errorf("Dockerfile:%d: EXPOSE %s", in.line, p)
				}
				img.exposed = append(img.exposed, n)
			}
		case "VOLUME":
			if strings.HasPrefix(in.args, "[") {
				img.volumes = append(img.volumes, execForm(t, in)...)
			} else {
				img.volumes = append(img.volumes, strings.Fields(in.args)...)
			}
		case "ENTRYPOINT":
			entrypoint = execForm(t, in)
		case "CMD":
			img.cmd = execForm(t, in)
		}
	}
	if installed == "" || !slices.Equal(entrypoint, []string{installed}) {
		t.Errorf("Dockerfile: the binary %s is installed as %q; the entrypoint is %q", binary, installed, entrypoint)
	}
	if img.uid == 0 {
		t.Errorf("Dockerfile: no USER: say which (non-root) user runs the daemon")
	}
	return img
}

func imageUser(t *testing.T) int {
	t.Helper()
	return dockerImage(t).uid
}

func TestDockerfile(t *testing.T) {
	img := dockerImage(t)
	if len(img.cmd) == 0 || img.cmd[0] != "daemon" {
		t.Fatalf("Dockerfile: CMD %q, want [\"daemon\", ...]", img.cmd)
	}
	vals := daemonArgs(t, "Dockerfile CMD", img.cmd[1:])
	host, port := hostPort(t, "Dockerfile CMD --listen", setting(t, vals, "listen"))
	if host != "0.0.0.0" && host != "" {
		t.Errorf("Dockerfile: CMD listens on %s: unreachable from outside the container", host)
	}
	if !slices.Contains(img.exposed, port) {
		t.Errorf("Dockerfile: EXPOSE %v; the daemon listens on %d", img.exposed, port)
	}
	if data := setting(t, vals, "data"); !slices.Contains(img.volumes, data) {
		t.Errorf("Dockerfile: VOLUME %v; the data dir is %s", img.volumes, data)
	}
	_, c := sluiceDeployment(t, loadManifests(t))
	if !c.hasPort(port) {
		t.Errorf("the image listens on %d, the Deployment's container does not declare it", port)
	}

	// The build context: the sources, not builds and data.
	var patterns []string
	for _, line := range strings.Split(readFile(t, filepath.Join("..", ".dockerignore")), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, strings.Trim(line, "/"))
		}
	}
	for _, want := range []string{"build", "bin", "data"} {
		if !slices.Contains(patterns, want) {
			t.Errorf(".dockerignore: no %s/", want)
		}
	}
	for _, need := range []string{"go.mod", "go.sum", "cmd", "internal", "deploy"} {
		for _, p := range patterns {
			if ok, _ := filepath.Match(p, need); ok {
				t.Errorf(".dockerignore: %q leaves out %s, which the build needs", p, need)
			}
		}
	}
}

// buildTags returns the image names that `docker build -f deploy/Dockerfile
// -t NAME` lines in a file build.
func buildTags(t *testing.T, path string) []string {
	t.Helper()
	var tags []string
	for _, m := range regexp.MustCompile(`docker build -f deploy/Dockerfile -t (\S+) \.`).FindAllStringSubmatch(readFile(t, path), -1) {
		tags = append(tags, m[1])
	}
	if len(tags) == 0 {
		t.Fatalf("%s says nowhere `docker build -f deploy/Dockerfile -t NAME .`", path)
	}
	return tags
}

func TestImageName(t *testing.T) {
	m := loadManifests(t)
	_, c := sluiceDeployment(t, m)
	for _, path := range []string{"README.md", "Dockerfile"} {
		for _, tag := range buildTags(t, path) {
			if tag != c.Image {
				t.Errorf("%s builds %s; the Deployment runs %s", path, tag, c.Image)
			}
		}
	}
	name, _, _ := strings.Cut(c.Image, ":")
	for _, img := range m.kust.Images {
		if img.Name != name {
			t.Errorf("kustomization.yaml: images %q replaces nothing; the Deployment runs %s", img.Name, c.Image)
		}
	}
}

func TestSystemdUnit(t *testing.T) {
	u := unitFile(t, "sluice.service")
	svc := u["Service"]
	one := func(key string) string {
		if v := svc[key]; len(v) == 1 {
			return v[0]
		}
		t.Errorf("sluice.service: want one %s=, have %q", key, svc[key])
		return ""
	}
	exec := strings.Fields(one("ExecStart"))
	if len(exec) < 2 || exec[1] != "daemon" || !strings.HasPrefix(exec[0], "/") || filepath.Base(exec[0]) != "sluice" {
		t.Fatalf("sluice.service: ExecStart=%q, want /PATH/sluice daemon ...", exec)
	}
	if readme := readFile(t, "README.md"); !strings.Contains(readme, " "+exec[0]+"\n") {
		t.Errorf("README.md does not install the binary at %s", exec[0])
	}
	vals := daemonArgs(t, "sluice.service ExecStart", exec[2:])
	data := setting(t, vals, "data")
	if !slices.Contains(strings.Fields(one("ReadWritePaths")), data) {
		t.Errorf("sluice.service: ReadWritePaths=%s; the data dir is %s", one("ReadWritePaths"), data)
	}
	if dir := one("StateDirectory"); "/var/lib/"+dir != data {
		t.Errorf("sluice.service: StateDirectory=%s makes /var/lib/%s; the data dir is %s", dir, dir, data)
	}
	if user := one("User"); user == "" || user == "root" || user == "0" {
		t.Errorf("sluice.service: User=%q: want a dedicated user", user)
	}
	if env := strings.TrimPrefix(one("EnvironmentFile"), "-"); env != "/etc/sluice/sluice.env" {
		t.Errorf("sluice.service: EnvironmentFile=%s", env)
	}
	stop, err := systemdDuration(one("TimeoutStopSec"))
	if st := shutdownTimeout(t, vals); err != nil || stop <= st {
		t.Errorf("sluice.service: TimeoutStopSec=%s (%v): systemd kills the daemon before its --shutdown-timeout %v", one("TimeoutStopSec"), err, st)
	}
	for key, want := range map[string]string{
		"Restart": "on-failure", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes", "ProtectHome": "yes",
	} {
		if got := one(key); got != want {
			t.Errorf("sluice.service: %s=%s, want %s", key, got, want)
		}
	}
	// The data dir holds the store (every function's environment) and the
	// broker's password: owner-only.
	if mode := one("StateDirectoryMode"); mode != "0700" && mode != "700" {
		t.Errorf("sluice.service: StateDirectoryMode=%s: the data dir holds secrets, want 0700", mode)
	}
	if umask := one("UMask"); umask != "0077" && umask != "077" {
		t.Errorf("sluice.service: UMask=%s: what the daemon writes holds secrets, want 0077", umask)
	}
	// wazero compiles functions to machine code at run time.
	if v := svc["MemoryDenyWriteExecute"]; len(v) > 0 && v[len(v)-1] == "yes" {
		t.Errorf("sluice.service: MemoryDenyWriteExecute=yes stops wazero from compiling functions")
	}

	set, mentioned := envFile(t, "sluice.env")
	for _, name := range mentioned {
		if len(envFlags(t, name, "daemon")) == 0 {
			t.Errorf("sluice.env: %s: sluice daemon reads no such variable", name)
		}
	}
	if host, _ := hostPort(t, "sluice.env SLUICE_LISTEN", set["SLUICE_LISTEN"]); host != "127.0.0.1" && host != "localhost" {
		if tok, ok := set["SLUICE_TOKEN"]; !ok || tok != "" {
			t.Errorf("sluice.env: listens on %s: want SLUICE_TOKEN= (empty, to fill in: a shipped token would be everyone's)", host)
		}
	}
}

func TestREADME(t *testing.T) {
	readme := readFile(t, "README.md")

	// Every `sluice daemon` command line, in code spans and blocks.
	var commands []string
	for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(readme, -1) {
		commands = append(commands, m[1])
	}
	for _, line := range strings.Split(readme, "\n") {
		if strings.HasPrefix(line, "    ") {
			commands = append(commands, line)
		}
	}
	checked := 0
	for _, cmd := range commands {
		f := strings.Fields(cmd)
		for i := 1; i < len(f); i++ {
			if f[i] != "daemon" || !strings.Contains(f[i-1], "sluice") {
				continue
			}
			args := f[i+1:]
			if end := slices.IndexFunc(args, func(s string) bool { return slices.Contains([]string{"#", "&&", "&", "|", `\`}, s) }); end >= 0 {
				args = args[:end]
			}
			if len(args) > 0 {
				daemonArgs(t, "README.md: "+strings.Join(f, " "), args)
				checked++
			}
		}
	}
	if checked < 3 {
		t.Errorf("README.md: found %d `sluice daemon` command lines with flags; the test reads code spans and indented blocks", checked)
	}

	// Each flag named with its variable: setting the variable sets the flag.
	pairs := regexp.MustCompile("`--([a-z-]+)` \\(`(SLUICE_[A-Z_]+)`\\)").FindAllStringSubmatch(readme, -1)
	if len(pairs) < 5 {
		t.Errorf("README.md: found %d \"`--flag` (`SLUICE_VAR`)\" pairs", len(pairs))
	}
	for _, p := range pairs {
		if got := envFlags(t, p[2], "daemon"); !slices.Contains(got, p[1]) {
			t.Errorf("README.md: `--%s` (`%s`): the variable sets %v", p[1], p[2], got)
		}
	}

	// nats-streaming-server command lines: v0.25.6 takes them, with the
	// configuration shipped here, and each node leaves itself out of its
	// peers.
	n := 0
	for _, line := range strings.Split(readme, "\n") {
		f := strings.Fields(line)
		if !strings.HasPrefix(line, "    ") || len(f) == 0 || f[0] != "nats-streaming-server" {
			continue
		}
		n++
		sopts, _ := natsServer(t, "README.md", f[1:], func(string) string { return filepath.Join(k8sDir, "nats-streaming.conf") })
		if cl := sopts.Clustering; cl.NodeID == "" || slices.Contains(cl.Peers, cl.NodeID) || len(cl.Peers) != 2 {
			t.Errorf("README.md: %s: node %q, peers %q", line, cl.NodeID, cl.Peers)
		}
	}
	if n == 0 {
		t.Errorf("README.md: no nats-streaming-server command line")
	}
}

// Every SLUICE_ variable that the deployment files name is one that sluice
// reads.
func TestEnvironmentVariables(t *testing.T) {
	files := []string{"README.md", "Dockerfile", "sluice.service", "sluice.env"}
	for _, glob := range []string{"*", "*/*"} {
		paths, _ := filepath.Glob(filepath.Join(k8sDir, glob))
		for _, p := range paths {
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				files = append(files, p)
			}
		}
	}
	seen := map[string]string{}
	for _, f := range files {
		for _, name := range regexp.MustCompile(`\bSLUICE_[A-Z0-9_]*[A-Z0-9]\b`).FindAllString(readFile(t, f), -1) {
			if _, ok := seen[name]; !ok {
				seen[name] = f
			}
		}
	}
	if _, ok := seen["SLUICE_TOKEN"]; !ok {
		t.Fatalf("no file names SLUICE_TOKEN: is the scan broken?")
	}
	for _, name := range slices.Sorted(maps.Keys(seen)) {
		if !readsEnv(t, name) {
			t.Errorf("%s names %s, which sluice does not read", seen[name], name)
		}
	}
}

// The checks above must be able to fail.
func TestChecksCatchMistakes(t *testing.T) {
	if readsEnv(t, "SLUICE_NO_SUCH_SETTING") {
		t.Errorf("readsEnv: an unknown variable counts as read")
	}
	if got := envFlags(t, "SLUICE_LISTEN", "daemon"); !slices.Equal(got, []string{"listen"}) {
		t.Errorf("SLUICE_LISTEN sets %v, want [listen]", got)
	}
	if got := envFlags(t, "SLUICE_INSECURE", "daemon"); !slices.Equal(got, []string{"insecure"}) {
		t.Errorf("SLUICE_INSECURE sets %v, want [insecure]", got)
	}
	vals, errs := parseDaemonArgs(daemonFlags(t), []string{"--no-such-flag=1", "--listen", "0.0.0.0:1", "--insecure", "stray", "--data"})
	if len(errs) != 3 || vals["listen"] != "0.0.0.0:1" || vals["insecure"] != "true" {
		t.Errorf("parseDaemonArgs: %v %v, want 3 errors (unknown flag, stray argument, --data without a value)", vals, errs)
	}
	if d, err := systemdDuration("1min 30s"); err != nil || d != 90*time.Second {
		t.Errorf("systemdDuration: %v %v", d, err)
	}
	var v struct {
		A int `yaml:"a"`
	}
	if strict([]byte("a: 1\nb: 2\n"), &v) == nil {
		t.Errorf("strict decoding accepted an unknown field")
	}
}

// secretRef is an env var of a container read from a Secret's key.
type secretRef struct{ env, secret, key string }

// natsPasswordRef returns the env var whose $(VAR) is the NATS
// Streaming container's --pass: it must come from a Secret.
func natsPasswordRef(t *testing.T, where string, c *container) secretRef {
	t.Helper()
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--pass="); ok {
			name := strings.TrimSuffix(strings.TrimPrefix(v, "$("), ")")
			for _, e := range c.Env {
				if e.Name == name && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					return secretRef{env: name, secret: e.ValueFrom.SecretKeyRef.Name, key: e.ValueFrom.SecretKeyRef.Key}
				}
			}
			t.Fatalf("%s: --pass=%s is not $(VAR) of an env var read from a Secret", where, v)
		}
	}
	t.Fatalf("%s: no --pass=: NATS Streaming lets clients in without a password", where)
	return secretRef{}
}

// readmeSecrets returns the Secrets that README.md has the user make
// (kubectl create secret generic NAME --from-literal=KEY=...) and their
// keys: those the manifests cannot ship, since a shipped value would be
// everyone's and an empty one would let anyone in.
func readmeSecrets(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	create := regexp.MustCompile(`kubectl create secret generic (\S+)((?: --from-literal=[A-Za-z0-9_.-]+=\S+)+)`)
	literal := regexp.MustCompile(`--from-literal=([A-Za-z0-9_.-]+)=`)
	for _, m := range create.FindAllStringSubmatch(readFile(t, "README.md"), -1) {
		for _, k := range literal.FindAllStringSubmatch(m[2], -1) {
			out[m[1]] = append(out[m[1]], k[1])
		}
	}
	return out
}
