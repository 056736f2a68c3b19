package main

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// zygote returns the zygote of the worker whose template is tmpl: its one
// child that is not a session leader (each job process makes its own
// session, first thing), or 0. Only while the worker is idle: a child just
// cloned has not made its session yet (see idleZygote).
func zygote(tmpl int) int {
	for _, p := range procs() {
		if p.ppid == tmpl && p.sid != p.pid && p.state != 'Z' {
			return p.pid
		}
	}
	return 0
}

// idleZygote waits until the server's one worker is idle, so that its
// waiting children have made their sessions, and returns its zygote.
func idleZygote(t *testing.T, s *server, tmpl int) int {
	t.Helper()
	waitFor(t, "the worker to be idle", func() bool { return s.ready(t).Body["idle_workers"] == 1.0 })
	return zygote(tmpl)
}

// TestZygote checks the process that forks the job processes in the
// template's place (python/worker.py, Zygote): it exists in warm mode, a job
// can neither signal it nor open a pidfd on it (it knows the zygote's pid: at
// namespaces level from /proc, at basic level from the test), not even the
// first job, and a worker whose zygote dies or stops answering is replaced
// whole.
func TestZygote(t *testing.T) {
	for _, su := range setups {
		t.Run(su.name, func(t *testing.T) {
			// A stopped zygote costs its worker 5 s, then a new one starts:
			// the queue waits for it however loaded the machine is.
			s := startSetup(t, su, nil, "--pool-size", "1", "--queue-timeout", "60s")
			tmpl := template(s.workers()[0])
			z := idleZygote(t, s, tmpl)
			if z == 0 {
				t.Fatalf("no zygote below template %d", tmpl)
			}
			if strings.Contains(s.logs.String(), "no zygote") {
				t.Errorf("the server logged a missing zygote where one runs:\n%s", s.logs)
			}
			// It mentions pandas: the first warm job, whose process the
			// template forked to probe, is the zygote's too.
			r := s.execute(t, script(`
import ctypes, os, pandas
libc = ctypes.CDLL(None, use_errno=True)
def sc(*a):
    ctypes.set_errno(0)
    rc = libc.syscall(*[ctypes.c_long(x) for x in a])
    return "ok" if rc >= 0 else os.strerror(ctypes.get_errno())
def main():
    me, parent = os.getpid(), os.getppid()
    try:  # namespaces level: the sandbox's /proc
        sibs = []
        for p in os.listdir("/proc"):
            if p.isdigit() and int(p) != me:
                f = open("/proc/%s/stat" % p).read().rsplit(")", 1)[1].split()
                if int(f[1]) == parent and int(f[3]) != int(p):
                    sibs.append(int(p))
        z = sibs[0]
    except (OSError, IndexError):
        z = `+strconv.Itoa(z)+`
    return {
        "kill": sc(62, z, 9), "stop": sc(62, z, 19), "tgkill": sc(234, z, z, 9),
        "sigqueue": sc(129, z, 9, 0), "pidfd_open": sc(434, z, 0),
    }`))
			denied := "Operation not permitted"
			want := map[string]any{"kill": denied, "stop": denied, "tgkill": denied, "sigqueue": denied, "pidfd_open": denied}
			got, _ := r.Body["result"].(map[string]any)
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s of the zygote: %v, want %v (%s)", k, got[k], v, r.Raw)
				}
			}
			if idleZygote(t, s, tmpl) != z || procs()[z].state == 'T' {
				t.Errorf("the zygote %d did not survive the job's attempts", z)
			}
			if su.name != setups[0].name {
				return
			}
			// Processes that are only slow to die (each of 64,000 memory
			// areas: the kernel takes seconds) are no fork chain: cleanup
			// waits for them, and the kill(-1) it keeps for chains, which
			// would take the zygote and so the worker, never comes.
			if r := s.execute(t, script(slowToDie)); r.Body["result"] != 20.0 {
				t.Fatalf("slow-to-die job: %s", r.Raw)
			}
			if r := s.execute(t, script("def main():\n    return 1")); r.Body["result"] != 1.0 {
				t.Fatalf("after the slow-to-die job: %s", r.Raw)
			}
			if ws := s.warmWorkers(); len(ws) != 1 || template(ws[0]) != tmpl || idleZygote(t, s, tmpl) != z {
				t.Fatalf("processes slow to die cost the worker (template %d, zygote %d; now workers %v)", tmpl, z, ws)
			}
			// Killed, and stopped (a zygote that never answers): it is never
			// replaced from the template, which has seen jobs; the worker is,
			// and every job still runs.
			for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGSTOP} {
				old := idleZygote(t, s, tmpl)
				if old <= 0 { // kill(0) would signal the test's own process group
					t.Fatalf("no zygote below template %d", tmpl)
				}
				if err := syscall.Kill(old, sig); err != nil {
					t.Fatal(err)
				}
				for i := range 3 {
					if r := s.execute(t, script("import pandas\ndef main():\n    return 1")); r.Body["result"] != 1.0 {
						t.Fatalf("%v: job %d after the zygote got %v: %s", sig, i, sig, r.Raw)
					}
				}
				waitFor(t, "a new worker with a zygote of its own", func() bool {
					ws := s.warmWorkers()
					if len(ws) != 1 || s.ready(t).Body["idle_workers"] != 1.0 {
						return false
					}
					tmpl = template(ws[0])
					return tmpl != 0 && zygote(tmpl) != 0 && zygote(tmpl) != old
				})
			}
		})
	}
}

// slowToDie starts 20 processes of 64,000 memory areas each, which then
// sleep: SIGKILLed, each takes the kernel a while to tear down.
const slowToDie = `
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
def main():
    r, w = os.pipe()
    for _ in range(20):
        if os.fork() == 0:
            n = 32000
            base = libc.mmap(None, 2 * n * 4096, 1, 0x22, -1, 0)  # PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS
            for i in range(n):
                libc.mprotect(base + 2 * i * 4096, 4096, 0)
            os.write(w, b"x")
            time.sleep(100)
    got = 0
    while got < 20:
        got += len(os.read(r, 100))
    return got`
