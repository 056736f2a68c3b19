package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
)

// An adversarial suite: each case is a script that attacks the sandbox. The
// case passes when the attack failed (checked on the response), the service
// is still healthy, and an ordinary job right after it is answered correctly.

// prelude gives attack scripts a raw syscall helper: sc(nr, args...) returns
// "ok" or the errno name.
const prelude = `import ctypes, errno, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
def sc(nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return "ok" if r >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
def attempt(f):
    try:
        f()
        return "allowed"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__
    except Exception as e:
        return type(e).__name__
`

type attack struct {
	name    string
	src     string  // Python; prelude is prepended
	timeout float64 // seconds; 0 = default
	check   func(r reply) string
}

// result wants main() to have returned exactly v.
func result(v any) func(reply) string {
	return func(r reply) string {
		want, _ := json.Marshal(v)
		got, _ := json.Marshal(r.Body["result"])
		if _, ok := r.Body["result"]; !ok || string(got) != string(want) {
			return fmt.Sprintf("want result %s", want)
		}
		return ""
	}
}

// failsWith wants an error that contains each of the substrings.
func failsWith(subs ...string) func(reply) string {
	return func(r reply) string {
		msg, _ := r.Body["error"].(string)
		for _, s := range subs {
			if !strings.Contains(msg, s) {
				return fmt.Sprintf("want an error containing %q", s)
			}
		}
		return ""
	}
}

// notForged wants anything but the value a forged frame carried.
func notForged(r reply) string {
	if v, ok := r.Body["result"]; ok && v == 666.0 {
		return "the forged result was accepted"
	}
	return ""
}

func TestAdversarial(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("syscall numbers in this suite are amd64's")
	}
	t.Setenv("SECRET_TOKEN", "hunter2") // the server must not pass it on
	s := startServer(t, "--pool-size", "2", "--require-isolation", "namespaces")
	if !strings.Contains(s.logs.String(), `"isolation":"namespaces"`) {
		t.Fatal("server is not running at isolation level namespaces")
	}
	// A host service on an abstract unix socket the jobs must not reach.
	abstract := fmt.Sprintf("@python-executor-test-%d", os.Getpid())
	ln, err := net.Listen("unix", abstract)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hostPort := strings.TrimPrefix(s.URL, "http://127.0.0.1:")

	attacks := []attack{
		// Host secrets and filesystem.
		{"read /etc/shadow", `def main(): return attempt(lambda: open("/etc/shadow").read())`, 0, result("ENOENT")},
		{"read /etc/passwd", `def main(): return attempt(lambda: open("/etc/passwd").read())`, 0, result("ENOENT")},
		{"list /root", `def main(): return attempt(lambda: os.listdir("/root"))`, 0, result("ENOENT")},
		{"list /home", `def main(): return attempt(lambda: os.listdir("/home"))`, 0, result("ENOENT")},
		{"root holds only the sandbox", `def main(): return sorted(os.listdir("/"))`, 0,
			result([]string{"bin", "dev", "etc", "lib", "lib64", "opt", "proc", "sbin", "tmp", "usr"})},
		{"no server binary anywhere", `
def main():
    hits = []
    for top in ("/usr", "/opt", "/tmp", "/etc"):
        for root, dirs, files in os.walk(top):
            hits += [os.path.join(root, f) for f in files if "python-executor" in f or f == "server.test"]
    return hits`, 0, result([]string{})},
		{"/sys is not mounted", `def main(): return os.path.exists("/sys/class/net")`, 0, result(false)},
		{"environment is the allow-list", `def main(): return "SECRET_TOKEN" in os.environ or any(k.startswith(("GO", "KUBERNETES")) for k in os.environ)`, 0, result(false)},
		{"no secret in any /proc/*/environ", `
def main():
    found = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if b"hunter2" in open("/proc/%s/environ" % p, "rb").read(): found.append(p)
            except OSError:
                pass
    return found`, 0, result([]string{})},
		// init, the template, its other waiting child and the job itself.
		{"/proc shows only the sandbox", `def main(): return len([p for p in os.listdir("/proc") if p.isdigit()]) <= 4`, 0, result(true)},
		{"template memory", `def main(): return attempt(lambda: open("/proc/2/mem", "rb").read(1))`, 0, result("EACCES")},
		{"template fds", `def main(): return attempt(lambda: os.listdir("/proc/2/fd"))`, 0, result("EACCES")},
		{"hostname", `def main(): return socket.gethostname()`, 0, result("sandbox")},
		{"server working directory", `def main(): return attempt(lambda: os.listdir("/work"))`, 0, result("ENOENT")},

		// Writes and persistence.
		{"write /usr", `def main(): return attempt(lambda: open("/usr/lib/evil", "w"))`, 0, result("EROFS")},
		{"write /etc", `def main(): return attempt(lambda: open("/etc/evil", "w"))`, 0, result("EROFS")},
		{"mkdir at /", `def main(): return attempt(lambda: os.mkdir("/evil"))`, 0, result("EROFS")},
		{"write site-packages", `
import numpy
def main(): return attempt(lambda: open(os.path.join(os.path.dirname(numpy.__file__), "evil.py"), "w"))`, 0, result("EROFS")},
		{"plant a file in /tmp", `
def main():
    open("/tmp/planted", "w").write("x")
    open("/dev/shm/planted", "w").write("x")
    return "planted"`, 0, result("planted")},
		{"planted files are gone", `def main(): return os.listdir("/tmp") + os.listdir("/dev/shm")`, 0, result([]string{})},
		{"fill /tmp", `
def main():
    with open("/tmp/fill", "wb") as f:
        while True: f.write(b"x" * (1 << 20))`, 0, failsWith("64 MiB")},
		{"fill /dev/shm", `
def main():
    with open("/dev/shm/fill", "wb") as f:
        while True: f.write(b"x" * (1 << 20))`, 0, failsWith("64 MiB")},

		// Processes that try to outlive their job.
		{"leave a daemon behind", `
import subprocess, time
def main():
    subprocess.Popen(["/bin/sleep", "300"], start_new_session=True)
    if os.fork() == 0:
        if os.fork() == 0:
            os.setsid(); time.sleep(300)
        os._exit(0)
    time.sleep(0.1)
    return "left"`, 0, result("left")},
		{"no process survived", `def main(): return len([p for p in os.listdir("/proc") if p.isdigit()])`, 0, result(4)},
		{"fork bomb", `
def main():
    while True: os.fork()`, 0, failsWith("at most 64 processes and threads")},
		{"thread bomb", `
import threading, time
def main():
    while True: threading.Thread(target=time.sleep, args=(60,), daemon=True).start()`, 0, failsWith("at most 64 processes and threads")},
		{"after the bombs", `def main(): return len([p for p in os.listdir("/proc") if p.isdigit()])`, 0, result(4)},

		// Network egress.
		{"tcp to the server's port", `def main(): return attempt(lambda: socket.create_connection(("127.0.0.1", ` + hostPort + `), timeout=1))`, 0, result("EPERM")},
		{"udp", `def main(): return attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))`, 0, result("EPERM")},
		{"ipv6", `def main(): return attempt(lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM))`, 0, result("EPERM")},
		{"dns", `
def main():
    try:
        return socket.getaddrinfo("example.com", 80)
    except socket.gaierror:
        return "no resolution"`, 0, result("no resolution")},
		{"raw packet socket", `def main(): return attempt(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))`, 0, result("EPERM")},
		{"netlink", `def main(): return attempt(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW))`, 0, result("EPERM")},
		{"host abstract unix socket", `
def main():
    s = socket.socket(socket.AF_UNIX)
    return attempt(lambda: s.connect("\0` + abstract[1:] + `"))`, 0, result("ECONNREFUSED")},
		{"host unix socket files", `def main(): return [p for p in ("/run/docker.sock", "/var/run/docker.sock", "/run/systemd") if os.path.exists(p)]`, 0, result([]string{})},
		{"only loopback exists", `def main(): return [l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:]]`, 0, result([]string{"lo"})},

		// Kernel attack surface.
		{"ptrace", `def main(): return sc(101, 0, 0, 0, 0)`, 0, result("EPERM")},
		{"process_vm_readv", `def main(): return sc(310, 2, 0, 1, 0, 1, 0)`, 0, result("EPERM")},
		{"mount", `def main(): return sc(165, 0, 0, 0, 0, 0)`, 0, result("EPERM")},
		{"unshare user namespace", `def main(): return sc(272, 0x10000000)`, 0, result("EPERM")},
		{"setns", `def main(): return sc(308, 0, 0)`, 0, result("EPERM")},
		{"chroot", `def main(): return sc(161, 0)`, 0, result("EPERM")},
		{"keyctl", `def main(): return sc(250, 0, 0, 0, 0, 0)`, 0, result("EPERM")},
		{"add_key", `def main(): return sc(248, 0, 0, 0, 0, 0)`, 0, result("EPERM")},
		{"bpf", `def main(): return sc(321, 0, 0, 0)`, 0, result("EPERM")},
		{"perf_event_open", `def main(): return sc(298, 0, 0, 0, 0, 0)`, 0, result("EPERM")},
		{"userfaultfd", `def main(): return sc(323, 0)`, 0, result("EPERM")},
		{"io_uring_setup", `def main(): return sc(425, 1, 0)`, 0, result("EPERM")},
		{"kexec_load", `def main(): return sc(246, 0, 0, 0, 0)`, 0, result("EPERM")},
		{"init_module", `def main(): return sc(175, 0, 0, 0)`, 0, result("EPERM")},
		{"personality", `def main(): return sc(135, 0x0040000)`, 0, result("EPERM")},
		{"SysV shared memory", `def main(): return sc(29, 0, 4096, 0o1666)`, 0, result("EPERM")},
		{"x32 syscall ABI", `def main(): return sc(0x40000000 + 39)`, 0, result("ENOSYS")},
		{"i386 syscall ABI (int 0x80)", `
import mmap
def main():
    code = bytes([0xb8, 20, 0, 0, 0, 0xcd, 0x80, 0xc3])  # mov eax, 20 (getpid); int 0x80; ret
    m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    m.write(code)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
    return ctypes.CFUNCTYPE(ctypes.c_int)(addr)()`, 0, failsWith("SIGSYS")},
		{"no capabilities, no_new_privs, not root", `
def main():
    st = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
    return [st["CapEff"].strip(), st["CapPrm"].strip(), st["NoNewPrivs"].strip(), os.getuid() != 0, st["Seccomp"].strip()]`, 0,
			result([]any{"0000000000000000", "0000000000000000", "1", true, "2"})},

		// Resource exhaustion.
		{"cpu loop", `
def main():
    while True: pass`, 1, failsWith("Time limit exceeded", "1s")},
		{"sleep ignoring SIGTERM", `
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
def main(): time.sleep(60)`, 1, failsWith("Time limit exceeded")},
		{"memory bomb", `
def main(): return len(bytearray(8 << 30))`, 0, failsWith("MemoryError", "1024 MiB")},
		{"memory creep", `
def main():
    keep = []
    while True: keep.append(bytearray(16 << 20))`, 0, failsWith("MemoryError", "1024 MiB")},
		{"numpy memory bomb", `
import numpy as np
def main(): return float(np.ones((50000, 50000)).sum())`, 0, failsWith("MemoryError")},
		{"fd exhaustion", `
def main():
    fds = [open("/dev/null") for _ in range(100000)]`, 0, failsWith("at most 256")},
		{"stdout flood", `
def main():
    chunk = "y" * 65536
    for _ in range(1000): sys.stdout.write(chunk)
    return "flooded"`, 0, result("flooded")},
		{"huge result", `def main(): return "z" * (64 << 20)`, 0, failsWith("Result too large")},
		{"deep recursion", `
def f(n): return f(n + 1)
def main(): return f(0)`, 0, failsWith("RecursionError")},
		{"int to str bomb", `def main(): return str(10 ** 200000)`, 0, failsWith("ValueError", "integer string conversion")},
		{"serialization that never ends", `
class Endless(dict):
    def items(self):
        while True: yield ("k", 1)
    def __len__(self): return 1
    def keys(self): return iter(["k"])
def gen():
    while True: yield 1
def main(): return {"x": list(gen())}`, 1, failsWith("Time limit exceeded")},

		// Signals.
		{"kill the template", `def main(): return attempt(lambda: os.kill(2, 9))`, 0, result("EPERM")},
		{"kill the parent", `def main(): return attempt(lambda: os.kill(os.getppid(), 9))`, 0, result("EPERM")},
		{"kill sandbox init", `def main(): return attempt(lambda: os.kill(1, 9))`, 0, result("EPERM")},
		{"kill everyone", `def main(): return attempt(lambda: os.kill(-1, 9))`, 0, result("EPERM")},
		{"kill the template's group", `def main(): return attempt(lambda: os.killpg(2, 9))`, 0, result("EPERM")},
		{"kill with a high-bits pid", `def main(): return sc(62, 0x100000002, 9)`, 0, result("EPERM")},
		{"tgkill the template", `def main(): return sc(234, 2, 2, 9)`, 0, result("EPERM")},
		{"pidfd of the template", `def main(): return sc(434, 2, 0)`, 0, result("EPERM")},
		// Besides init and the template, the job can see the template's other
		// waiting child; it may stop or kill it, and the template replaces
		// it before its next job (the checks after each attack run one job
		// of each kind).
		{"stop every visible process", `
import signal
def main():
    me = os.getpid()
    got = {p: attempt(lambda: os.kill(int(p), signal.SIGSTOP)) for p in os.listdir("/proc") if p.isdigit() and int(p) != me}
    return [got["1"], got["2"]]`, 0, result([]string{"EPERM", "EPERM"})},
		{"kill every visible process", `
import signal
def main():
    me = os.getpid()
    got = {p: attempt(lambda: os.kill(int(p), signal.SIGKILL)) for p in os.listdir("/proc") if p.isdigit() and int(p) != me}
    return [got["1"], got["2"]]`, 0, result([]string{"EPERM", "EPERM"})},

		// Protocol forgery.
		{"fake frames to every fd, then return", `
import struct
def main():
    frame = struct.pack(">I", 15) + b'{"result": 666}'
    for fd in range(0, 1024):
        try: os.write(fd, frame * 3)
        except OSError: pass
    return 1`, 0, notForged},
		{"fake frames, then exit", `
import struct
def main():
    frame = struct.pack(">I", 15) + b'{"result": 666}'
    for fd in range(3, 1024):
        try: os.write(fd, frame)
        except OSError: pass
    os._exit(0)`, 0, notForged},
		{"fake frames on stdout", `
import struct
def main():
    sys.stdout.buffer.write(struct.pack(">I", 15) + b'{"result": 666}')
    sys.stdout.flush()
    return 7`, 0, result(7)},
		{"close every fd", `
def main():
    os.closerange(0, 1024)
    return 666`, 0, notForged},
	}
	if len(attacks) < 50 {
		t.Fatalf("only %d attack cases", len(attacks))
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			body := script(prelude + a.src)
			if a.timeout > 0 {
				body = scriptWithTimeout(prelude+a.src, a.timeout)
			}
			r := s.execute(t, body)
			if r.Status != http.StatusOK {
				t.Errorf("attack answered %d: %.300s", r.Status, r.Raw)
			} else if problem := a.check(r); problem != "" {
				t.Errorf("%s; got %.300s", problem, r.Raw)
			}
			health, _ := http.NewRequest("GET", s.URL+"/health", nil)
			if h := do(t, health); h.Status != 200 {
				t.Fatalf("service unhealthy after the attack: %d %s", h.Status, h.Raw)
			}
			// One job for each kind of waiting child: warmed and plain.
			after := s.execute(t, script("import numpy as np\ndef main():\n    print('fine')\n    return int(np.arange(5).sum())"))
			if after.Status != 200 || after.Body["result"] != 10.0 || after.Body["stdout"] != "fine" {
				t.Fatalf("ordinary job after the attack: %d %s", after.Status, after.Raw)
			}
			plain := s.execute(t, script("def main():\n    return 'plain'"))
			if plain.Status != 200 || plain.Body["result"] != "plain" {
				t.Fatalf("ordinary plain job after the attack: %d %s", plain.Status, plain.Raw)
			}
		})
	}
	if strings.Contains(s.logs.String(), `"reason":`) {
		t.Errorf("an attack cost a worker: %s", grepLines(s.logs.String(), `"reason":`))
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestMemoryAcrossProcesses: RLIMIT_AS caps each process; a job that forks
// several processes which each stay under it must still meet a cap on them
// all together (a memory cgroup per worker, where the host gives one).
func TestMemoryAcrossProcesses(t *testing.T) {
	req, _ := http.NewRequest("GET", shared.URL+"/info", nil)
	if info := do(t, req); info.Body["memory_cgroup"] != true {
		t.Skip("no memory cgroup here (needs root and a cgroup v1 memory controller)")
	}
	r := shared.execute(t, scriptWithTimeout(`
import os, time
def main():
    for i in range(6):
        if os.fork() == 0:
            b = bytearray(700 << 20)
            for j in range(0, len(b), 4096): b[j] = 1
            time.sleep(30)
    b = bytearray(700 << 20)
    for j in range(0, len(b), 4096): b[j] = 1
    time.sleep(5)
    return "survived"`, 20))
	if msg, _ := r.Body["error"].(string); !strings.HasPrefix(msg, "Memory limit exceeded") || !strings.Contains(msg, "1024 MiB") {
		t.Errorf("got %s, want the memory limit named", r.Raw)
	}
	if after := shared.execute(t, script("def main(): return 1")); after.Body["result"] != 1.0 {
		t.Errorf("job after: %s", after.Raw)
	}
}
