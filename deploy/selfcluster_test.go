package deploy

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// selfClusteredDir holds the manifests of three daemons that are their
// own JetStream cluster.
var selfClusteredDir = filepath.Join(k8sDir, "self-clustered")

// TestSelfClusteredStatefulSet checks deploy/kubernetes/self-clustered
// against the binary's flags and against itself: a 3-replica StatefulSet
// of `sluice daemon --broker jetstream --cluster`, started in parallel,
// whose --peers name each member through the headless Service at its
// cluster port, with the cluster password, the NATS password and the
// token from Secrets, and its store on a volume of its own.
func TestSelfClusteredStatefulSet(t *testing.T) {
	m := loadManifestsIn(t, selfClusteredDir)
	res := slices.Sorted(slices.Values(m.kust.Resources))
	if !slices.Equal(res, m.files) {
		t.Errorf("self-clustered/kustomization.yaml lists %v; the manifests are %v", res, m.files)
	}
	if len(m.deployments) != 0 {
		t.Errorf("self-clustered: Deployments %v: the daemons are the StatefulSet", m.deployments)
	}
	var ss *workload
	for _, s := range m.statefulSets {
		ss = s
	}
	if len(m.statefulSets) != 1 || len(ss.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("self-clustered: want one StatefulSet of one container, have %d", len(m.statefulSets))
	}
	where := "self-clustered StatefulSet " + ss.Metadata.Name
	c := &ss.Spec.Template.Spec.Containers[0]
	pod := &ss.Spec.Template.Spec
	if len(c.Args) == 0 || c.Args[0] != "daemon" || len(c.Command) > 0 {
		t.Fatalf("%s: runs %q %q, want the image's sluice with daemon", where, c.Command, c.Args)
	}
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 3 {
		t.Errorf("%s: want 3 replicas: a JetStream cluster of 3 keeps a majority when one is lost", where)
	}
	if ss.Spec.PodManagementPolicy != "Parallel" {
		t.Errorf("%s: podManagementPolicy %q: a member is ready once the cluster has a leader (two members); started in order, the first waits for ever: want Parallel", where, ss.Spec.PodManagementPolicy)
	}
	if !selects(ss.Spec.Selector.MatchLabels, ss.Spec.Template.Metadata.Labels) {
		t.Errorf("%s: the selector does not match the pod labels", where)
	}

	n := *ss.Spec.Replicas
	members := make([]map[string]string, n)
	for i := range members {
		name := fmt.Sprintf("%s-%d", ss.Metadata.Name, i)
		args := make([]string, len(c.Args)-1)
		for j, a := range c.Args[1:] {
			args[j] = c.expand(a, name)
		}
		members[i] = daemonArgs(t, where+" pod "+name, args)
	}
	vals := members[0]
	if b := setting(t, vals, "broker"); b != "jetstream" {
		t.Errorf("%s: --broker %q, want jetstream", where, b)
	}
	if setting(t, vals, "cluster") == "" {
		t.Errorf("%s: no --cluster", where)
	}
	if _, ok := vals["nats"]; ok {
		t.Errorf("%s: --nats: the members embed their servers", where)
	}

	// The headless Service: the members' names, before they are ready.
	headless := m.services[ss.Spec.ServiceName]
	if headless == nil || headless.Spec.ClusterIP != "None" || !selects(headless.Spec.Selector, ss.Spec.Template.Metadata.Labels) {
		t.Fatalf("%s: serviceName %q is not a headless Service of its pods", where, ss.Spec.ServiceName)
	}
	if !headless.Spec.PublishNotReadyAddresses {
		t.Errorf("Service %s: want publishNotReadyAddresses: members resolve each other before they are ready", headless.Metadata.Name)
	}
	_, clusterPort := hostPort(t, where+": --cluster-listen", setting(t, vals, "cluster-listen"))
	if !c.hasPort(clusterPort) {
		t.Errorf("%s: the container does not declare the cluster port %d", where, clusterPort)
	}
	var want []string
	for i := range n {
		want = append(want, net.JoinHostPort(fmt.Sprintf("%s-%d.%s", ss.Metadata.Name, i, headless.Metadata.Name), fmt.Sprint(clusterPort)))
	}
	for i, v := range members {
		peers := strings.Split(setting(t, v, "peers"), ",")
		if !slices.Equal(slices.Sorted(slices.Values(peers)), want) {
			t.Errorf("%s pod %d: --peers %q, want every member at its cluster port: %q", where, i, peers, want)
		}
	}
	routed := false
	for _, sp := range headless.Spec.Ports {
		p, ok := c.port(sp.TargetPort)
		routed = routed || ok && p == clusterPort && sp.Port == clusterPort
	}
	if !routed {
		t.Errorf("Service %s: no port %d to the cluster port", headless.Metadata.Name, clusterPort)
	}

	// The API: probes, and a Service with a port to it.
	_, port := hostPort(t, where+": --listen", setting(t, vals, "listen"))
	for _, p := range []struct {
		path  string
		probe *probe
	}{{"/readyz", c.ReadinessProbe}, {"/healthz", c.LivenessProbe}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path {
			t.Errorf("%s: no %s probe", where, p.path)
		} else if got, ok := c.port(p.probe.HTTPGet.Port); !ok || got != port {
			t.Errorf("%s: %s probe on %s, the API is on %d", where, p.path, p.probe.HTTPGet.Port, port)
		}
	}
	api := false
	for _, s := range m.servicesOf(ss) {
		for _, sp := range s.Spec.Ports {
			p, ok := c.port(sp.TargetPort)
			api = api || s.Spec.ClusterIP != "None" && ok && p == port
		}
	}
	if !api {
		t.Errorf("%s: no Service with a port to the API (%d)", where, port)
	}

	// Secrets by environment, from Secrets the kustomization makes, empty
	// in the template; none on the command line.
	for _, f := range []string{"token", "cluster-password", "nats-password", "nats-token"} {
		if _, ok := vals[f]; ok {
			t.Errorf("%s: --%s on the command line: use the environment, from the Secret", where, f)
		}
	}
	for _, flag := range []string{"token", "cluster-password", "nats-password"} {
		var ref *envVar
		for i, e := range c.Env {
			if !readsEnv(t, e.Name) {
				t.Errorf("%s: env %s: sluice reads no such variable", where, e.Name)
			}
			if slices.Equal(envFlags(t, e.Name, "daemon"), []string{flag}) {
				ref = &c.Env[i]
			}
		}
		if ref == nil || ref.ValueFrom == nil || ref.ValueFrom.SecretKeyRef == nil {
			t.Errorf("%s: --%s does not come from a Secret", where, flag)
			continue
		}
		s := m.secrets[ref.ValueFrom.SecretKeyRef.Name]
		if s == nil {
			t.Errorf("%s: --%s: no Secret %q", where, flag, ref.ValueFrom.SecretKeyRef.Name)
		} else if v, ok := s.StringData[ref.ValueFrom.SecretKeyRef.Key]; !ok || v != "" {
			t.Errorf("Secret %s: key %s: want it in the template, empty (a shipped value would be everyone's)", s.Metadata.Name, ref.ValueFrom.SecretKeyRef.Key)
		}
	}

	// The store on a volume of each member's own.
	data := setting(t, vals, "data")
	vol, _ := c.mountOf(data)
	claimed := false
	for _, ct := range ss.Spec.VolumeClaimTemplates {
		claimed = claimed || ct.Metadata.Name == vol
	}
	if !claimed {
		t.Errorf("%s: --data %s is not on a volumeClaimTemplate: the JetStream store would not outlive the pod", where, data)
	}

	// Stopping, and hardening, as for the Deployment.
	checkStopping(t, where, pod, c, vals)
	if sc := pod.SecurityContext; sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != int64(imageUser(t)) {
		t.Errorf("%s: want runAsNonRoot as the image's user", where)
	}
	checkContainerHardening(t, where, c)
	if pod.EnableServiceLinks == nil || *pod.EnableServiceLinks {
		t.Errorf("%s: Services named sluice would set SLUICE_SERVICE_HOST... among sluice's settings: set enableServiceLinks: false", where)
	}
	if len(m.pdbs) != 1 {
		t.Errorf("self-clustered: want a PodDisruptionBudget (one member at a time)")
	}
	for _, p := range m.pdbs {
		if p.Spec.MaxUnavailable == nil || p.Spec.MaxUnavailable.String() != "1" || !selects(p.Spec.Selector.MatchLabels, ss.Spec.Template.Metadata.Labels) {
			t.Errorf("PodDisruptionBudget %s: want maxUnavailable 1 over the members: two down stop the cluster", p.Metadata.Name)
		}
	}
}
