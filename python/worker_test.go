package python

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/python-executor/python-executor/internal/sandbox"
)

// workerFile writes the embedded worker program to a file that a test's
// Python can import.
func workerFile(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "worker.py")
	if err := os.WriteFile(path, Worker, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSweepSharedDirs runs worker.py's sweep of world-writable directories
// in a real Python: after a job, a root server's worker (a uid of its own)
// without Landlock removes what its uid left there, never the scratch root,
// never another uid's files, and does nothing where Landlock confines writes
// or the uid is shared.
func TestSweepSharedDirs(t *testing.T) {
	dir := t.TempDir()
	worker := workerFile(t)
	src := `
import importlib.util, json, os, sys
spec = importlib.util.spec_from_file_location("w", sys.argv[1])
w = importlib.util.module_from_spec(spec); spec.loader.exec_module(w)
shared = os.path.join(sys.argv[2], "tmp")
def setup():
    os.makedirs(os.path.join(shared, "scratch-root", "job-1"), exist_ok=True)
    open(os.path.join(shared, "left.txt"), "w").write("secret")
    os.makedirs(os.path.join(shared, "left-dir", "deep"), exist_ok=True)
    open(os.path.join(shared, "left-dir", "deep", "f"), "w").write("secret")
    os.chmod(os.path.join(shared, "left-dir"), 0)
    if not os.path.exists(os.path.join(shared, "someone-else")):
        open(os.path.join(shared, "someone-else"), "w").write("theirs")
        if os.getuid() == 0:
            os.chown(os.path.join(shared, "someone-else"), 12345, 12345)
w.SHARED_DIRS = (shared, "/nonexistent")
cfg = {"scratch": [os.path.join(shared, "scratch-root")]}
out = {}
for name, extra in [("landlock", {"landlock_abi": 6, "own_uid": True}), ("shared uid", {"landlock_abi": 0, "own_uid": False}),
                    ("own uid, no landlock", {"landlock_abi": 0, "own_uid": True})]:
    setup()
    w.sweep_shared_dirs(dict(cfg, **extra))
    out[name] = sorted(os.listdir(shared))
print(json.dumps(out))
`
	out, err := exec.Command("/usr/bin/python3", "-c", src, worker, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	got := strings.TrimSpace(string(out))
	kept := `["left-dir", "left.txt", "scratch-root", "someone-else"]`
	want := `{"landlock": ` + kept + `, "shared uid": ` + kept + `, "own uid, no landlock": ["scratch-root"`
	if os.Getuid() == 0 {
		want += `, "someone-else"]}`
	} else {
		want += `]}`
	}
	if got != want {
		t.Errorf("what stayed in the shared directory:\n got %s\nwant %s", got, want)
	}
}

// TestInBackground runs a warm child's low-priority preparation in a real
// Python: the work runs at nice 19 in a thread of its own, the caller's
// thread (which will run the job) keeps its priority, the work's value comes
// back, and a failure is an error, not a silent empty result.
func TestInBackground(t *testing.T) {
	worker := workerFile(t)
	src := `
import importlib.util, json, os, sys, _thread
spec = importlib.util.spec_from_file_location("w", sys.argv[1])
w = importlib.util.module_from_spec(spec); spec.loader.exec_module(w)
main = _thread.get_native_id()
before = os.getpriority(os.PRIO_PROCESS, 0)
def work():
    return {"nice": os.getpriority(os.PRIO_PROCESS, 0), "other_thread": _thread.get_native_id() != main}
got = w.in_background(work)
got["caller_kept_its_nice"] = os.getpriority(os.PRIO_PROCESS, 0) == before
sys.unraisablehook = lambda u: None  # the failing thread's traceback
try:
    w.in_background(lambda: 1 / 0)
    got["failure"] = "none"
except RuntimeError as e:
    got["failure"] = str(e)
print(json.dumps(got, sort_keys=True))
`
	out, err := exec.Command("/usr/bin/python3", "-c", src, worker).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := `{"caller_kept_its_nice": true, "failure": "warming up failed", "nice": 19, "other_thread": true}`
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

// TestPopulate runs a warm child's page copy in a real Python: the pages
// are copied (writing them afterwards takes no fault) and read, and a range
// gone since the probe is skipped, not read (which would kill the child).
func TestPopulate(t *testing.T) {
	worker := workerFile(t)
	src := `
import ctypes, importlib.util, json, mmap, os, resource, sys
spec = importlib.util.spec_from_file_location("w", sys.argv[1])
w = importlib.util.module_from_spec(spec); spec.loader.exec_module(w)
if not w.populate_supported():
    print("unsupported"); sys.exit(0)
n = 64
m = mmap.mmap(-1, n * w.PAGE)
for i in range(n):
    m[i * w.PAGE] = 1
x = ctypes.c_char.from_buffer(m); addr = ctypes.addressof(x); del x
gone = mmap.mmap(-1, 4 * w.PAGE)
x = ctypes.c_char.from_buffer(gone); gone_addr = ctypes.addressof(x); del x
gone.close()
r, wr = os.pipe()
pid = os.fork()
if pid == 0:
    w.machine_idle = lambda fd: True  # read ahead whatever else runs
    w.populate([(gone_addr, 4 * w.PAGE), (addr, n * w.PAGE)])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for i in range(n):
        m[i * w.PAGE] = 2
    os.write(wr, b"%d" % (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before))
    os._exit(0)
os.close(wr)
faults = int(os.read(r, 64) or -1)
_, status = os.waitpid(pid, 0)
print(json.dumps({"status": status, "faults_after": faults}))
`
	out, err := exec.Command("/usr/bin/python3", "-c", src, worker).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	got := strings.TrimSpace(string(out))
	if got == "unsupported" {
		t.Skip("this kernel lacks MADV_POPULATE_WRITE")
	}
	var res struct {
		Status      int `json:"status"`
		FaultsAfter int `json:"faults_after"`
	}
	if err := json.Unmarshal([]byte(got), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if res.Status != 0 || res.FaultsAfter < 0 || res.FaultsAfter > 8 {
		t.Errorf("child exited with status %d and took %d faults writing 64 copied pages; want 0 and none", res.Status, res.FaultsAfter)
	}
}

// TestListedChildren runs the template's quick check after a job in a
// real Python: the kernel's children lists name the living children; a
// subreaper whose only children are the ones it keeps has no process of the
// job left; an orphaned grandchild (reparented to it) or an unreaped zombie
// means it has, and kill_all ends them while sparing the kept child.
func TestListedChildren(t *testing.T) {
	worker := workerFile(t)
	src := `
import importlib.util, json, os, sys, time
spec = importlib.util.spec_from_file_location("w", sys.argv[1])
w = importlib.util.module_from_spec(spec); spec.loader.exec_module(w)
w.prctl(w.PR_SET_CHILD_SUBREAPER, 1)

def state(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(") ", 1)[1][0]

def until(cond):
    deadline = time.monotonic() + 10
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.01)

got = {}
kept = os.fork()
if kept == 0:
    time.sleep(60)
    os._exit(0)
keep = {kept}
only_kept = lambda: w.listed_children() <= keep
got["children listed"] = kept in w.listed_children()
w.CHILDREN_LISTS = True
got["kept child only"] = only_kept()
r, wr = os.pipe()
parent = os.fork()
if parent == 0:
    grandchild = os.fork()
    if grandchild == 0:
        time.sleep(60)
        os._exit(0)
    os.write(wr, b"%d" % grandchild)
    os._exit(0)
os.close(wr)
grandchild = int(os.read(r, 32))
os.waitpid(parent, 0)
until(lambda: grandchild in w.children_of(os.getpid()))
got["orphaned grandchild"] = only_kept()
w.kill_all(None, keep)
got["after kill_all"] = only_kept()
zombie = os.fork()
if zombie == 0:
    os._exit(0)
until(lambda: state(zombie) == "Z")
got["zombie"] = only_kept()
w.reap()
got["reaped"] = only_kept()
got["kept child alive"] = state(kept) == "S"
os.kill(kept, 9)
print(json.dumps(got))
`
	out, err := exec.Command("/usr/bin/python3", "-c", src, worker).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := `{"children listed": true, "kept child only": true, "orphaned grandchild": false, "after kill_all": true, "zombie": false, "reaped": true, "kept child alive": true}`
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

// TestProtectPid runs the seccomp program a zygote's child stacks on the
// server's in a real Python (the zygote's pid is known only inside the
// worker): every way to signal the protected pid, or open a pidfd on it,
// fails with EPERM whatever the high bits of the argument, while the caller
// may still signal itself and any other process.
func TestProtectPid(t *testing.T) {
	nums, err := sandbox.SignalSyscalls()
	if err != nil {
		t.Fatal(err)
	}
	list, _ := json.Marshal(nums)
	if runtime.GOARCH != "amd64" {
		t.Skip("the raw syscall numbers below are amd64's")
	}
	worker := workerFile(t)
	src := `
import ctypes, importlib.util, json, os, signal, sys, time
spec = importlib.util.spec_from_file_location("w", sys.argv[1])
w = importlib.util.module_from_spec(spec); spec.loader.exec_module(w)
def sleeper():
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    return pid
protected, other = sleeper(), sleeper()
r, wr = os.pipe()
pid = os.fork()
if pid == 0:
    libc = ctypes.CDLL(None, use_errno=True)
    def sc(*a):
        ctypes.set_errno(0)
        rc = libc.syscall(*[ctypes.c_long(x) for x in a])
        return "EPERM" if rc < 0 and ctypes.get_errno() == 1 else ("ok" if rc >= 0 else os.strerror(ctypes.get_errno()))
    w.install_seccomp(w.protect_pid(json.loads(sys.argv[2]), protected))
    got = {
        "kill": sc(62, protected, 0), "kill high bits": sc(62, (1 << 32) | protected, 0),
        "tgkill": sc(234, protected, protected, 0), "rt_sigqueueinfo": sc(129, protected, 10, 0),
        "rt_tgsigqueueinfo": sc(297, protected, protected, 10, 0), "pidfd_open": sc(434, protected, 0),
        "kill other": sc(62, other, 0), "kill self": sc(62, os.getpid(), 0), "getpid": sc(39),
    }
    os.write(wr, json.dumps(got, sort_keys=True).encode())
    os._exit(0)
os.close(wr)
print(os.read(r, 4096).decode())
for p in (protected, other):
    os.kill(p, signal.SIGKILL)
`
	out, err := exec.Command("/usr/bin/python3", "-c", src, worker, string(list)).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := `{"getpid": "ok", "kill": "EPERM", "kill high bits": "EPERM", "kill other": "ok", "kill self": "ok", ` +
		`"pidfd_open": "EPERM", "rt_sigqueueinfo": "EPERM", "rt_tgsigqueueinfo": "EPERM", "tgkill": "EPERM"}`
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestStartZygoteSaysWhyNot checks the reasons a warm template gives the
// server for forking the job processes itself (the server logs them): a
// machine whose clone() layout worker.py does not know, and a clone that
// ignores CLONE_PARENT (gVisor), here imitated by a zygote whose test child
// is not the template's to reap.
func TestStartZygoteSaysWhyNot(t *testing.T) {
	worker := workerFile(t)
	src := `
import importlib.util, json, os, sys
spec = importlib.util.spec_from_file_location("w", sys.argv[1])
w = importlib.util.module_from_spec(spec); spec.loader.exec_module(w)
cfg = {"signal_syscalls": [62], "own_uid": True}
got = {"not asked": w.start_zygote({})}
real = w.clone_supported
w.clone_supported = lambda: False
got["unknown layout"] = w.start_zygote(cfg)
w.clone_supported = real
if real():
    w.CLONE_PARENT = 0  # the test child is the zygote's: the template cannot reap it
    got["clone ignores CLONE_PARENT"] = w.start_zygote(cfg)
    got["no zygote left"] = w.ZYGOTE is None
print(json.dumps(got, sort_keys=True))
`
	out, err := exec.Command("/usr/bin/python3", "-c", src, worker).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := map[string]any{"not asked": "not asked for",
		"unknown layout": "no clone() layout known for this machine and libc"}
	if _, ok := got["no zygote left"]; ok {
		want["clone ignores CLONE_PARENT"] = "[Errno 10] clone ignores CLONE_PARENT here (gVisor does)"
		want["no zygote left"] = true
	} else {
		t.Log("no zygote on this machine: the CLONE_PARENT case is not checked")
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %v, want %v", k, got[k], v)
		}
	}
}
