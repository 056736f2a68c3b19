package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("worker uids are switched only by a root server")
	}
}

func TestServerRefusesWorkerUIDsAnotherServerHolds(t *testing.T) {
	needRoot(t)
	first := freshUIDs()
	freshUIDs() // first+16..first+31 too: the refused server asks for first+8..first+23
	ids := func(base int) []string {
		return []string{"--worker-uid", strconv.Itoa(base), "--worker-gid", strconv.Itoa(base), "--worker-uids", "16"}
	}
	a := startServer(t, append([]string{"--pool-size", "1"}, ids(first)...)...)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	second := exec.CommandContext(ctx, binary, append([]string{"--addr", "127.0.0.1:0", "--pool-size", "1"}, ids(first+8)...)...)
	second.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := second.CombinedOutput()
	if err == nil {
		t.Fatalf("a second server took uids %d-%d while another held %d-%d:\n%s", first+8, first+23, first, first+15, out)
	}
	want := "overlap those of process " + strconv.Itoa(a.cmd.Process.Pid)
	if !strings.Contains(string(out), want) || !strings.Contains(string(out), "--worker-uid") {
		t.Fatalf("the refusal should name the server holding the uids (%q) and the flag to change:\n%s", want, out)
	}
	// The first server lost nothing.
	if r := a.execute(t, script("def main():\n    return 7")); r.Status != 200 || r.Body["result"] != 7.0 {
		t.Fatalf("first server after the refusal: %s", r.Raw)
	}
}

func TestServerKillsWhatADeadServerLeftUnderItsUIDs(t *testing.T) {
	needRoot(t)
	first := freshUIDs()
	// A job's daemon that outlived its server (killed with SIGKILL).
	left := exec.Command("/bin/sleep", "600")
	left.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(first + 3), Gid: uint32(first + 3), Groups: []uint32{}}}
	if err := left.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- left.Wait() }()
	t.Cleanup(func() { left.Process.Kill() })

	s := startServer(t, "--pool-size", "1", "--worker-uid", strconv.Itoa(first), "--worker-gid", strconv.Itoa(first), "--worker-uids", "16")
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the process left under a worker uid is still running after the server started")
	}
	if !strings.Contains(s.logs.String(), `"uids":[`+strconv.Itoa(first+3)+`]`) {
		t.Errorf("the server should log the uid it cleared:\n%s", s.logs)
	}
}

func TestServerRemovesMemoryCgroupsOfDeadServers(t *testing.T) {
	needRoot(t)
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var parent string
	for _, line := range strings.Split(string(own), "\n") {
		if f := strings.SplitN(line, ":", 3); len(f) == 3 && f[1] == "memory" {
			parent = "/sys/fs/cgroup/memory" + f[2]
		}
	}
	if parent == "" {
		t.Skip("no cgroup v1 memory controller here")
	}
	dead, err := start("--pool-size", "1")
	if err != nil {
		t.Fatal(err)
	}
	group := filepath.Join(parent, "python-executor-"+strconv.Itoa(dead.cmd.Process.Pid))
	if _, err := os.Stat(group); err != nil {
		dead.cmd.Process.Kill()
		<-dead.done
		t.Skipf("the server made no memory cgroup here (%v)", err)
	}
	dead.cmd.Process.Kill()
	<-dead.done
	if _, err := os.Stat(group); err != nil {
		t.Fatalf("a server killed with SIGKILL cannot remove its cgroup, yet %s is gone: %v", group, err)
	}
	waitFor(t, "the dead server's workers to exit", func() bool { return len(dead.workerPids()) == 0 })

	startServer(t, "--pool-size", "1")
	if _, err := os.Stat(group); !os.IsNotExist(err) {
		t.Errorf("the next server left the dead one's memory cgroup %s (stat: %v)", group, err)
	}
}

// Out of memory (a worker's cgroup, the container's, the host's), the kernel
// must kill a job's processes, never a template, its zygote or the server: every job
// process starts with oom_score_adj 1000 (it used to fail to write it, once
// non-dumpable, and the template was killed instead).
func TestJobProcessesAreTheOOMKillersFirstChoice(t *testing.T) {
	for _, level := range []string{"auto", "basic"} {
		t.Run(level, func(t *testing.T) {
			s := startServer(t, "--pool-size", "1", "--isolation", level)
			waitFor(t, "a worker", func() bool { return len(s.warmWorkers()) == 1 })
			tmpl := template(s.warmWorkers()[0])
			// The two waiting children (session leaders, each its own), and
			// the zygote that forked them, which raises its score only around
			// each fork: the kernel should kill a job, not the process every
			// later job comes from.
			var children []int
			waitFor(t, "the template's waiting children and zygote", func() bool {
				children = children[:0]
				for _, p := range procs() {
					if p.ppid == tmpl && p.sid == p.pid {
						children = append(children, p.pid)
					}
				}
				return tmpl != 0 && len(children) == 2 && zygote(tmpl) != 0
			})
			adj := func(pid int) string {
				b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/oom_score_adj")
				return strings.TrimSpace(string(b))
			}
			for _, c := range children {
				if got := adj(c); got != "1000" {
					t.Errorf("job process %d: oom_score_adj %q, want 1000", c, got)
				}
			}
			if got := adj(tmpl); got == "1000" {
				t.Errorf("the template has oom_score_adj 1000 too")
			}
			if got := adj(zygote(tmpl)); got != adj(tmpl) {
				t.Errorf("the zygote has oom_score_adj %q, want the template's %q", got, adj(tmpl))
			}
		})
	}
}
