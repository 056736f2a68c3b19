package sandbox

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/python-executor/python-executor/python"
)

// runLandlockProbe loads worker.py into a real Python, applies the job's
// Landlock rules for level (and nothing else: no seccomp, no namespaces, so
// the layer is checked on its own) and returns what a set of probes got.
func runLandlockProbe(t *testing.T, level Level, probes string) map[string]any {
	t.Helper()
	abi, _ := landlockABI()
	if abi < LandlockFullABI {
		t.Skipf("Landlock ABI %d here; these probes need %d", abi, LandlockFullABI)
	}
	dir := t.TempDir()
	worker := filepath.Join(dir, "worker.py")
	if err := os.WriteFile(worker, python.Worker, 0o644); err != nil {
		t.Fatal(err)
	}
	scratch := filepath.Join(dir, "scratch")
	os.Mkdir(scratch, 0o700)
	rules, _ := json.Marshal(landlockRules(level))
	src := fmt.Sprintf(`
import importlib.util, json, os, socket, sys, errno
spec = importlib.util.spec_from_file_location("w", %q)
w = importlib.util.module_from_spec(spec); spec.loader.exec_module(w)
def attempt(f):
    try:
        f(); return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
w.prctl(w.PR_SET_NO_NEW_PRIVS, 1)
w.install_landlock(json.loads(%q), %d, [%q])
os.chdir(%q)
out = {}
%s
print(json.dumps(out))
`, worker, rules, abi, scratch, scratch, probes)
	cmd := exec.Command("/usr/bin/python3", "-I", "-c", src)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("probe: %v: %s", err, b)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("probe output %q: %v", b, err)
	}
	return got
}

func TestLandlockBasicLevel(t *testing.T) {
	// Outside the probe's domain: a listening abstract socket and this
	// process (its parent), both of which the probe must not reach.
	abstract := fmt.Sprintf("@landlock-test-%d", os.Getpid())
	ln, err := net.Listen("unix", abstract)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	port := tcp.Addr().(*net.TCPAddr).Port
	got := runLandlockProbe(t, LevelBasic, fmt.Sprintf(`
out["read /usr"] = attempt(lambda: open("/usr/lib/os-release").read())
out["read /etc/hostname"] = attempt(lambda: open("/etc/hostname").read())
out["read /etc/ld.so.cache"] = attempt(lambda: open("/etc/ld.so.cache", "rb").read(1))
out["list /tmp"] = attempt(lambda: os.listdir("/tmp"))
out["write /tmp"] = attempt(lambda: open("/tmp/landlock-probe-%%d" %% os.getpid(), "w"))
out["write scratch"] = attempt(lambda: open("f", "w").write("x"))
out["mkdir scratch"] = attempt(lambda: os.mkdir("d"))
out["write /dev/null"] = attempt(lambda: open("/dev/null", "w").write("x"))
out["read /proc/1/environ"] = attempt(lambda: open("/proc/1/environ", "rb").read())
out["read /proc/self/status"] = attempt(lambda: open("/proc/self/status").read())
out["read parent's memory"] = attempt(lambda: open("/proc/%%d/mem" %% os.getppid(), "rb"))
out["signal parent"] = attempt(lambda: os.kill(os.getppid(), 0))
out["signal self"] = attempt(lambda: os.kill(os.getpid(), 0))
def abstract():
    s = socket.socket(socket.AF_UNIX); s.connect("\0%s")
out["abstract socket outside"] = attempt(abstract)
out["tcp connect"] = attempt(lambda: socket.create_connection(("127.0.0.1", %d), timeout=2))
def bind():
    s = socket.socket(); s.bind(("127.0.0.1", 0))
out["tcp bind"] = attempt(bind)
`, abstract[1:], port))
	want := map[string]any{
		"read /usr": "ok", "read /etc/hostname": "EACCES", "read /etc/ld.so.cache": "ok",
		"list /tmp": "EACCES", "write /tmp": "EACCES", "write scratch": "ok", "mkdir scratch": "ok",
		"write /dev/null": "ok", "read /proc/1/environ": "EACCES", "read /proc/self/status": "EACCES",
		"read parent's memory": "EACCES", "signal parent": "EPERM", "signal self": "ok",
		"abstract socket outside": "EPERM", "tcp connect": "EACCES", "tcp bind": "EACCES",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("under the basic-level rules alone (-want +got):\n%s", diff)
	}
}

// TestLandlockConstants: the access rights worker.py spells out by hand
// match the kernel's UAPI, as golang.org/x/sys has it.
func TestLandlockConstants(t *testing.T) {
	got := runLandlockProbe(t, LevelNamespaces, `
out = {k: getattr(w, k) for k in ("FS_EXECUTE", "FS_WRITE_FILE", "FS_READ_FILE", "FS_READ_DIR", "FS_TRUNCATE",
    "NET_BIND_TCP", "NET_CONNECT_TCP", "SCOPE_ABSTRACT_UNIX_SOCKET", "SCOPE_SIGNAL")}
out["all rights, ABI 5"] = w.landlock_fs_rights(5)
`)
	want := map[string]any{
		"FS_EXECUTE": float64(unix.LANDLOCK_ACCESS_FS_EXECUTE), "FS_WRITE_FILE": float64(unix.LANDLOCK_ACCESS_FS_WRITE_FILE),
		"FS_READ_FILE": float64(unix.LANDLOCK_ACCESS_FS_READ_FILE), "FS_READ_DIR": float64(unix.LANDLOCK_ACCESS_FS_READ_DIR),
		"FS_TRUNCATE":  float64(unix.LANDLOCK_ACCESS_FS_TRUNCATE),
		"NET_BIND_TCP": float64(unix.LANDLOCK_ACCESS_NET_BIND_TCP), "NET_CONNECT_TCP": float64(unix.LANDLOCK_ACCESS_NET_CONNECT_TCP),
		"SCOPE_ABSTRACT_UNIX_SOCKET": float64(unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET), "SCOPE_SIGNAL": float64(unix.LANDLOCK_SCOPE_SIGNAL),
		"all rights, ABI 5": float64(unix.LANDLOCK_ACCESS_FS_IOCTL_DEV<<1 - 1),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("worker.py's Landlock constants (-want +got):\n%s", diff)
	}
}
