// Package deploy_test checks the deployment manifests, since no cluster is
// reachable from CI: each file must parse strictly into its Kubernetes type
// (an unknown or misspelt field fails) and hold what the service relies on.
package deploy_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
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

// The Docker seccomp profile, deploy/docker/seccomp.json, is Docker 20.10.24's
// default profile (docker/seccomp-default.json, verbatim from moby) with the
// rules of docker/seccomp-additions.json appended, so `diff` between the two
// files shows exactly what the sandbox adds. After editing the additions:
//
//	go test ./deploy -run TestDockerSeccompProfile -update
var update = flag.Bool("update", false, "rewrite docker/seccomp.json from the default profile and the additions")

const (
	// sha256 of profiles/seccomp/default.json at moby v20.10.24 (commit
	// 5d6db842238e, the engine in Debian bookworm's docker.io).
	mobyDefaultSHA256 = "ce3585b856aa4a193671fd8280d0d0612a998bd3f10bdb2f8530dfa958c6197f"
	cloneNamespaces   = 0x7e020000 // CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
	cloneNewUser      = 0x10000000
	mntDetach         = 2
)

// What the sandbox (bubblewrap) needs beyond Docker's default, and why; the
// additions file must name exactly these. Evidence for each is in the README.
var wantAdditions = map[string]string{
	"clone":       "create the sandbox's user, pid, net, mount, ipc, uts and cgroup namespaces",
	"unshare":     "enter the nested user namespace that maps the sandbox uid",
	"mount":       "build the sandbox's root and mount its own /proc",
	"umount2":     "detach the old root",
	"pivot_root":  "switch to the sandbox's root",
	"sethostname": "name the sandbox's UTS namespace",
}

// Syscalls that must not become any more allowed than Docker's default
// allows them, whatever is added.
var neverAdd = []string{
	"ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
	"bpf", "perf_event_open", "userfaultfd", "kexec_load", "kexec_file_load",
	"init_module", "finit_module", "delete_module", "open_by_handle_at", "name_to_handle_at",
	"clone3", "setns", "chroot", "umount", "fsopen", "fsconfig", "fsmount", "fspick",
	"move_mount", "open_tree", "mount_setattr", "keyctl", "add_key", "request_key",
	"io_uring_setup", "io_uring_enter", "io_uring_register", "reboot", "swapon", "swapoff",
	"syslog", "acct", "iopl", "ioperm", "quotactl", "lookup_dcookie", "fanotify_init",
	"setdomainname", "personality", "settimeofday", "clock_settime", "vhangup",
}

// Docker's default bounding set: what a container has without --cap-add.
var dockerDefaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// The profile format Docker 20.10 reads (profiles/seccomp.Seccomp at v20.10.24
// and runtime-spec's LinuxSeccompArg), limited to the fields these files use.
// Decoded strictly: Docker itself ignores a misspelt key without a word.
type seccompProfile struct {
	DefaultAction string        `json:"defaultAction"`
	ArchMap       []seccompArch `json:"archMap,omitempty"`
	Syscalls      []seccompRule `json:"syscalls"`
}

type seccompArch struct {
	Arch      string   `json:"architecture"`
	SubArches []string `json:"subArchitectures"`
}

type seccompRule struct {
	Names    []string      `json:"names,omitempty"`
	Action   string        `json:"action"`
	ErrnoRet *uint         `json:"errnoRet,omitempty"`
	Args     []seccompArg  `json:"args"`
	Comment  string        `json:"comment"`
	Includes seccompFilter `json:"includes"`
	Excludes seccompFilter `json:"excludes"`
}

type seccompFilter struct {
	Caps      []string `json:"caps,omitempty"`
	Arches    []string `json:"arches,omitempty"`
	MinKernel string   `json:"minKernel,omitempty"`
}

type seccompArg struct {
	Index    uint   `json:"index"`
	Value    uint64 `json:"value"`
	ValueTwo uint64 `json:"valueTwo,omitempty"`
	Op       string `json:"op"`
}

func decodeStrict(t *testing.T, file string, into any) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if dec.More() {
		t.Fatalf("%s: data after the JSON value", file)
	}
	return b
}

func marshalProfile(t *testing.T, p seccompProfile) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "\t")
	if err := enc.Encode(p); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")) // moby's file has no final newline
}

// effective lists, per syscall, the rules Docker 20.10 passes to runc for an
// amd64 container whose bounding set is caps (profiles/seccomp.setupSeccomp).
// Every minKernel in these files is older than any kernel the sandbox runs on.
func effective(p seccompProfile, caps []string) map[string][]string {
	out := map[string][]string{}
rules:
	for _, r := range p.Syscalls {
		if slices.Contains(r.Excludes.Arches, "amd64") ||
			len(r.Includes.Arches) > 0 && !slices.Contains(r.Includes.Arches, "amd64") ||
			r.Excludes.MinKernel != "" {
			continue
		}
		for _, c := range r.Excludes.Caps {
			if slices.Contains(caps, c) {
				continue rules
			}
		}
		for _, c := range r.Includes.Caps {
			if !slices.Contains(caps, c) {
				continue rules
			}
		}
		desc := r.Action
		if r.ErrnoRet != nil {
			desc += fmt.Sprintf(" errno %d", *r.ErrnoRet)
		}
		for _, a := range r.Args {
			desc += fmt.Sprintf(" arg%d %s %#x %#x", a.Index, a.Op, a.Value, a.ValueTwo)
		}
		for _, n := range r.Names {
			out[n] = append(out[n], desc)
		}
	}
	return out
}

func TestDockerSeccompProfile(t *testing.T) {
	var def, shipped seccompProfile
	var additions []seccompRule
	defBytes := decodeStrict(t, "docker/seccomp-default.json", &def)
	decodeStrict(t, "docker/seccomp-additions.json", &additions)

	if sum := fmt.Sprintf("%x", sha256.Sum256(defBytes)); sum != mobyDefaultSHA256 {
		t.Fatalf("docker/seccomp-default.json is not moby v20.10.24's default profile: sha256 %s", sum)
	}
	// Re-encoding the default reproduces it byte for byte: the types above
	// hold every field it has, so the additions are written the same way.
	if !bytes.Equal(marshalProfile(t, def), defBytes) {
		t.Fatal("re-encoding docker/seccomp-default.json does not reproduce it: the profile types miss a field")
	}
	want := def
	want.Syscalls = append(slices.Clip(def.Syscalls), additions...)
	wantBytes := marshalProfile(t, want)
	if *update {
		if err := os.WriteFile("docker/seccomp.json", wantBytes, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	shippedBytes := decodeStrict(t, "docker/seccomp.json", &shipped)
	if !bytes.Equal(shippedBytes, wantBytes) {
		t.Fatal("docker/seccomp.json is not the default profile plus the additions; run: go test ./deploy -run TestDockerSeccompProfile -update")
	}

	// The additions: exactly the named ones, allow rules with a comment, and
	// none of them touches a syscall that must stay as Docker has it.
	var names []string
	for _, r := range additions {
		if len(r.Names) != 1 || r.Action != "SCMP_ACT_ALLOW" || r.ErrnoRet != nil ||
			!strings.HasPrefix(r.Comment, "python-executor: ") || len(r.Includes.Caps)+len(r.Excludes.Caps) != 0 {
			t.Errorf("addition %v: want one syscall, SCMP_ACT_ALLOW, a comment saying why, no capability conditions", r.Names)
			continue
		}
		names = append(names, r.Names...)
		switch r.Names[0] {
		case "clone":
			// All namespace flags at once, and never on s390, where
			// argument 0 is the stack pointer.
			if len(r.Args) != 1 || r.Args[0] != (seccompArg{Index: 0, Value: cloneNamespaces, ValueTwo: cloneNamespaces, Op: "SCMP_CMP_MASKED_EQ"}) ||
				!slices.Equal(r.Excludes.Arches, []string{"s390", "s390x"}) {
				t.Errorf("clone must be allowed only with all seven namespace flags set (and not on s390): %+v", r)
			}
		case "unshare":
			if len(r.Args) != 1 || r.Args[0] != (seccompArg{Index: 0, Value: cloneNewUser, Op: "SCMP_CMP_EQ"}) {
				t.Errorf("unshare must be allowed only for exactly CLONE_NEWUSER: %+v", r.Args)
			}
		case "umount2":
			if len(r.Args) != 1 || r.Args[0] != (seccompArg{Index: 1, Value: mntDetach, Op: "SCMP_CMP_EQ"}) {
				t.Errorf("umount2 must be allowed only with exactly MNT_DETACH: %+v", r.Args)
			}
		}
	}
	slices.Sort(names)
	if w := slices.Sorted(maps.Keys(wantAdditions)); !slices.Equal(names, w) {
		t.Errorf("additions name %v, want exactly %v", names, w)
	}

	// What a container actually gets: only the named syscalls change, and
	// only by gaining the added rules; clone3 stays ENOSYS (its flags are in
	// a struct the filter cannot read, so libc must fall back to clone).
	for _, bounding := range []struct {
		name string
		caps []string
	}{{"Docker's default capabilities", dockerDefaultCaps}, {"no capabilities", nil}} {
		d, s := effective(def, bounding.caps), effective(shipped, bounding.caps)
		for n := range s {
			if slices.Equal(d[n], s[n]) {
				continue
			}
			if _, ok := wantAdditions[n]; !ok || !slices.Equal(d[n], s[n][:min(len(d[n]), len(s[n]))]) {
				t.Errorf("%s: %s changed from %v to %v", bounding.name, n, d[n], s[n])
			}
		}
		for _, n := range neverAdd {
			if !slices.Equal(d[n], s[n]) {
				t.Errorf("%s: %s must stay as Docker's default has it: %v, not %v", bounding.name, n, d[n], s[n])
			}
		}
		if got := s["clone3"]; !slices.Equal(got, []string{"SCMP_ACT_ERRNO errno 38"}) {
			t.Errorf("%s: clone3 gets %v, want only ENOSYS (errno 38)", bounding.name, got)
		}
	}
	if shipped.DefaultAction != "SCMP_ACT_ERRNO" {
		t.Errorf("defaultAction %s, want SCMP_ACT_ERRNO", shipped.DefaultAction)
	}
}
