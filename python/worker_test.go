package python

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
