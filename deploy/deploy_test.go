// Package deploy_test checks the deployment manifests, since no cluster is
// reachable from CI: each file must parse strictly into its Kubernetes type
// (an unknown or misspelt field fails) and hold what the service relies on.
package deploy_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

func load(t *testing.T, file string, into any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, into); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func TestKubernetesManifests(t *testing.T) {
	var d appsv1.Deployment
	var svc corev1.Service
	var hpa autoscalingv2.HorizontalPodAutoscaler
	var pdb policyv1.PodDisruptionBudget
	var rc nodev1.RuntimeClass
	load(t, "kubernetes/deployment.yaml", &d)
	load(t, "kubernetes/service.yaml", &svc)
	load(t, "kubernetes/hpa.yaml", &hpa)
	load(t, "kubernetes/pdb.yaml", &pdb)
	load(t, "kubernetes/gvisor.yaml", &rc)

	if d.Kind != "Deployment" || svc.Kind != "Service" || hpa.Kind != "HorizontalPodAutoscaler" ||
		pdb.Kind != "PodDisruptionBudget" || rc.Kind != "RuntimeClass" {
		t.Fatalf("kinds: %s %s %s %s %s", d.Kind, svc.Kind, hpa.Kind, pdb.Kind, rc.Kind)
	}
	pod := d.Spec.Template
	labels := pod.Labels
	matches := func(sel map[string]string) bool {
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	if !matches(d.Spec.Selector.MatchLabels) || !matches(svc.Spec.Selector) || !matches(pdb.Spec.Selector.MatchLabels) {
		t.Error("a selector does not match the pod's labels")
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}

	probe := func(name string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "http" {
			t.Errorf("%s probe must GET %s on port http", name, path)
		}
	}
	probe("readiness", c.ReadinessProbe, "/ready")
	probe("liveness", c.LivenessProbe, "/health")
	probe("startup", c.StartupProbe, "/health")
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != 8080 {
		t.Errorf("container must expose 8080 as http: %+v", c.Ports)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != "http" {
		t.Errorf("service must target port http: %+v", svc.Spec.Ports)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("no %s request", r)
		}
		if _, ok := c.Resources.Limits[r]; !ok {
			t.Errorf("no %s limit", r)
		}
	}
	psc, sc := pod.Spec.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Error("the pod must run as non-root")
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil ||
		len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Error("the container must drop all capabilities and privilege escalation")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("the container must not be privileged")
	}
	if env["PYEXEC_REQUIRE_ISOLATION"] != "namespaces" {
		t.Error("PYEXEC_REQUIRE_ISOLATION must be namespaces: a pod that cannot sandbox must not serve")
	}
	grace, err := time.ParseDuration(env["PYEXEC_SHUTDOWN_GRACE"])
	if err != nil || pod.Spec.TerminationGracePeriodSeconds == nil ||
		time.Duration(*pod.Spec.TerminationGracePeriodSeconds)*time.Second <= grace {
		t.Errorf("terminationGracePeriodSeconds must exceed PYEXEC_SHUTDOWN_GRACE (%q)", env["PYEXEC_SHUTDOWN_GRACE"])
	}
	if hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != d.Name {
		t.Errorf("HPA targets %s/%s, want Deployment/%s", hpa.Spec.ScaleTargetRef.Kind, hpa.Spec.ScaleTargetRef.Name, d.Name)
	}
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 || pdb.Spec.MinAvailable == nil {
		t.Error("want at least two replicas and a PDB that keeps one")
	}
	if rc.Handler != "runsc" {
		t.Errorf("gVisor RuntimeClass handler = %q, want runsc", rc.Handler)
	}
}

func TestCloudRunScript(t *testing.T) {
	if out, err := exec.Command("bash", "-n", "cloudrun/deploy.sh").CombinedOutput(); err != nil {
		t.Fatalf("deploy.sh does not parse: %v\n%s", err, out)
	}
	b, _ := os.ReadFile("cloudrun/deploy.sh")
	for _, want := range []string{"--min-instances", "--no-cpu-throttling", "--concurrency", "--startup-probe", "--execution-environment", "PYEXEC_REQUIRE_ISOLATION"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("deploy.sh lacks %s", want)
		}
	}
}
