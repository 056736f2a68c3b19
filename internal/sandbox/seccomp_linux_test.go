package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// The test binary re-executes itself with the filter installed (it cannot be
// removed once set) and reports what each probe returned.
const probeEnv = "PYEXEC_SECCOMP_PROBE"

func TestMain(m *testing.M) {
	if os.Getenv(probeEnv) != "" {
		probe()
		return
	}
	os.Exit(m.Run())
}

func probe() {
	parent := os.Getppid()
	prog, err := Seccomp([]int{parent})
	if err == nil {
		err = install(prog)
	}
	if err != nil {
		fmt.Println(`{"install": "` + err.Error() + `"}`)
		os.Exit(1)
	}
	res := func(err error) string {
		if err == nil {
			return "ok"
		}
		var errno unix.Errno
		if errors.As(err, &errno) {
			return unix.ErrnoName(errno)
		}
		return err.Error()
	}
	kill := func(pid uint64) string {
		_, _, e := unix.Syscall(unix.SYS_KILL, uintptr(pid), 0, 0)
		if e != 0 {
			return res(e)
		}
		return "ok"
	}
	socket := func(domain int) string {
		fd, err := unix.Socket(domain, unix.SOCK_STREAM, 0)
		if err == nil {
			unix.Close(fd)
		}
		return res(err)
	}
	out := map[string]string{
		"kill parent":            kill(uint64(parent)),
		"kill parent, high bits": kill(uint64(parent) | 1<<32),
		"kill parent's group":    kill(uint64(-parent)),
		"kill everyone":          kill(uint64(0xffffffff)),
		"kill self":              kill(uint64(os.Getpid())),
		"socket AF_INET":         socket(unix.AF_INET),
		"socket AF_INET6":        socket(unix.AF_INET6),
		"socket AF_UNIX":         socket(unix.AF_UNIX),
		"unshare":                res(unix.Unshare(unix.CLONE_NEWUSER)),
		"ptrace":                 res(unix.PtraceAttach(parent)),
		"x32 getpid":             res(rawErr(unix.Syscall(0x40000000+unix.SYS_GETPID, 0, 0, 0))),
	}
	json.NewEncoder(os.Stdout).Encode(out)
}

func rawErr(_, _ uintptr, e unix.Errno) error {
	if e != 0 {
		return e
	}
	return nil
}

// install loads a classic BPF program on every thread of the process.
func install(prog []byte) error {
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	fprog := unix.SockFprog{Len: uint16(len(prog) / 8), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
	_, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	if e != 0 {
		return e
	}
	return nil
}

func TestSeccompFilter(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("probes use amd64 syscall numbers")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), probeEnv+"=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("probe: %v: %s", err, out)
	}
	var got map[string]string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("probe output %q: %v", out, err)
	}
	want := map[string]string{
		"kill parent":            "EPERM",
		"kill parent, high bits": "EPERM",
		"kill parent's group":    "EPERM",
		"kill everyone":          "EPERM",
		"kill self":              "ok",
		"socket AF_INET":         "EPERM",
		"socket AF_INET6":        "EPERM",
		"socket AF_UNIX":         "ok",
		"unshare":                "EPERM",
		"ptrace":                 "EPERM",
		"x32 getpid":             "ENOSYS",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("syscalls under the filter (-want +got):\n%s", diff)
	}
}

func TestSeccompFitsTheKernel(t *testing.T) {
	// The kernel refuses programs over BPF_MAXINSNS (4096) instructions.
	for _, protected := range [][]int{{1, 2}, {2147483647, 123456789}} {
		prog, err := Seccomp(protected)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(prog) / 8; n == 0 || n > 4096 {
			t.Errorf("Seccomp(%v) has %d instructions", protected, n)
		}
	}
}
