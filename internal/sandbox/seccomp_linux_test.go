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
			return errnoName(e)
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
		// clone3's flags are in memory the filter cannot read: ENOSYS, and
		// libc falls back to clone. (Allowed, a NULL struct is EINVAL.)
		"clone3":                                res(rawErr(unix.Syscall(unix.SYS_CLONE3, 0, 0, 0))),
		"clone CLONE_NEWUSER":                   cloneProbe(unix.CLONE_NEWUSER),
		"clone CLONE_NEWNET":                    cloneProbe(unix.CLONE_NEWNET),
		"pidfd_send_signal":                     res(rawErr(unix.Syscall6(unix.SYS_PIDFD_SEND_SIGNAL, 0, 0, 0, 0, 0, 0))),
		"prlimit parent":                        res(unix.Prlimit(parent, unix.RLIMIT_NOFILE, nil, &unix.Rlimit{})),
		"prlimit self (0)":                      res(unix.Prlimit(0, unix.RLIMIT_NOFILE, nil, &unix.Rlimit{})),
		"setpriority parent":                    res(unix.Setpriority(unix.PRIO_PROCESS, parent, 19)),
		"setpriority own uid":                   res(unix.Setpriority(unix.PRIO_USER, 0, 19)),
		"setpriority self (0)":                  res(unix.Setpriority(unix.PRIO_PROCESS, 0, 1)),
		"sched_setaffinity parent":              res(unix.SchedSetaffinity(parent, &unix.CPUSet{1})),
		"ioctl TIOCSTI":                         res(rawErr(unix.Syscall(unix.SYS_IOCTL, 0, unix.TIOCSTI, 0))),
		"socketpair AF_UNIX":                    socketpair(unix.AF_UNIX),
		"socketpair AF_INET":                    socketpair(unix.AF_INET),
		"socketpair AF_NETLINK":                 socketpair(unix.AF_NETLINK),
		"socketpair AF_UNIX SOCK_DGRAM":         socketpairOf(unix.AF_UNIX, unix.SOCK_DGRAM),
		"socketpair AF_UNIX SOCK_DGRAM|CLOEXEC": socketpairOf(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC),
		"socketpair AF_UNIX SOCK_RAW":           socketpairOf(unix.AF_UNIX, unix.SOCK_RAW),
		"socketpair AF_UNIX SOCK_SEQPACKET":     socketpairOf(unix.AF_UNIX, unix.SOCK_SEQPACKET),
		"file_getattr (468, Linux 6.17)":        res(rawErr(unix.Syscall6(468, 0, 0, 0, 0, 0, 0))),
		"file_setattr (469, Linux 6.17)":        res(rawErr(unix.Syscall6(469, 0, 0, 0, 0, 0, 0))),
		"fallocate 0":                           fallocateProbe(0),
		"fallocate FALLOC_FL_KEEP_SIZE":         fallocateProbe(unix.FALLOC_FL_KEEP_SIZE),
		"splice":                                pipeProbe(unix.SYS_SPLICE),
		"tee":                                   pipeProbe(unix.SYS_TEE),
		"sendfile":                              pipeProbe(unix.SYS_SENDFILE),
		"fallocate PUNCH_HOLE|KEEP_SIZE":        fallocateProbe(unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE),
		"prctl PR_SET_DUMPABLE":                 res(unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0)),
		"prctl PR_GET_DUMPABLE":                 res(unix.Prctl(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)),
		"move_pages":                            res(rawErr(unix.Syscall6(unix.SYS_MOVE_PAGES, uintptr(parent), 0, 0, 0, 0, 0))),
		"tkill parent":                          res(rawErr(unix.Syscall(unix.SYS_TKILL, uintptr(parent), 0, 0))),
		"tgkill self":                           res(rawErr(unix.Syscall(unix.SYS_TGKILL, uintptr(os.Getpid()), uintptr(unix.Gettid()), 0))),
		"ioctl TIOCSTI, high bits":              res(rawErr(unix.Syscall(unix.SYS_IOCTL, 0, unix.TIOCSTI|1<<32, 0))),
		"ioctl FIOSETOWN":                       res(rawErr(unix.Syscall(unix.SYS_IOCTL, 0, 0x8901, 0))),
		"ioctl SIOCSPGRP":                       res(rawErr(unix.Syscall(unix.SYS_IOCTL, 0, 0x8902, 0))),
		"fcntl F_SETOWN":                        fcntlProbe(unix.F_SETOWN, parent),
		"fcntl F_SETOWN 0":                      fcntlProbe(unix.F_SETOWN, 0),
		"fcntl F_SETOWN_EX":                     fcntlProbe(unix.F_SETOWN_EX, 0),
		"fcntl F_NOTIFY":                        fcntlProbe(unix.F_NOTIFY, 1), // DN_ACCESS
		"fcntl F_SETSIG":                        fcntlProbe(unix.F_SETSIG, 0),
		"fcntl F_GETFL":                         fcntlProbe(unix.F_GETFL, 0),
		"SO_SNDBUF":                             sockoptProbe(unix.SOL_SOCKET, unix.SO_SNDBUF),
		"SO_RCVBUF":                             sockoptProbe(unix.SOL_SOCKET, unix.SO_RCVBUF),
		"SO_SNDBUFFORCE":                        sockoptProbe(unix.SOL_SOCKET, unix.SO_SNDBUFFORCE),
		"SO_SNDBUF, high bits":                  sockoptProbe(unix.SOL_SOCKET|1<<32, unix.SO_SNDBUF|1<<32),
		"SO_KEEPALIVE":                          sockoptProbe(unix.SOL_SOCKET, unix.SO_KEEPALIVE),
		"io_setup":                              res(rawErr(unix.Syscall(unix.SYS_IO_SETUP, 1, 0, 0))),
		"vmsplice":                              res(rawErr(unix.Syscall6(unix.SYS_VMSPLICE, 0, 0, 0, 0, 0, 0))),
		"epoll_create1":                         res(rawErr(unix.Syscall(unix.SYS_EPOLL_CREATE1, 0, 0, 0))),
		"setsid":                                res(rawErr(unix.RawSyscall(unix.SYS_SETSID, 0, 0, 0))),
		"getxattr":                              xattrProbe(unix.SYS_GETXATTR),
		"lgetxattr":                             xattrProbe(unix.SYS_LGETXATTR),
		"listxattr":                             xattrProbe(unix.SYS_LISTXATTR),
		"llistxattr":                            xattrProbe(unix.SYS_LLISTXATTR),
		"fgetxattr":                             fxattrProbe(),
		"mmap MAP_HUGETLB":                      mmapProbe(unix.MAP_PRIVATE | unix.MAP_ANONYMOUS | unix.MAP_HUGETLB),
		"mmap MAP_HUGETLB, shared":              mmapProbe(unix.MAP_SHARED | unix.MAP_ANONYMOUS | unix.MAP_HUGETLB),
		"mmap anonymous":                        mmapProbe(unix.MAP_PRIVATE | unix.MAP_ANONYMOUS),
		"mmap shared anonymous":                 mmapProbe(unix.MAP_SHARED | unix.MAP_ANONYMOUS),
		"fcntl F_SETLK":                         lockProbe(unix.F_SETLK),
		"fcntl F_SETLKW":                        lockProbe(unix.F_SETLKW),
		"fcntl F_OFD_SETLK":                     lockProbe(unix.F_OFD_SETLK),
		"fcntl F_OFD_SETLKW":                    lockProbe(unix.F_OFD_SETLKW),
		"flock":                                 res(flockProbe()),
		"SO_ATTACH_FILTER":                      sockoptProbe(unix.SOL_SOCKET, unix.SO_ATTACH_FILTER),
		"SO_ATTACH_BPF":                         sockoptProbe(unix.SOL_SOCKET, unix.SO_ATTACH_BPF),
		"SO_ATTACH_REUSEPORT_CBPF":              sockoptProbe(unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF),
		"SO_ATTACH_REUSEPORT_EBPF":              sockoptProbe(unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_EBPF),
		"seccomp":                               res(rawErr(unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, 0))),
		"prctl PR_SET_SECCOMP":                  res(unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, 0, 0, 0)),
		"prctl PR_GET_SECCOMP":                  res(unix.Prctl(unix.PR_GET_SECCOMP, 0, 0, 0, 0)),
		"bind abstract":                         bindProbe(),
		"prctl PR_FUTEX_HASH":                   res(rawErr(unix.Syscall6(unix.SYS_PRCTL, unix.PR_FUTEX_HASH, unix.PR_FUTEX_HASH_GET_SLOTS, 0, 0, 0, 0))),
		"prctl PR_SET_VMA":                      res(rawErr(unix.Syscall6(unix.SYS_PRCTL, unix.PR_SET_VMA, 0, 0, 0, 0, 0))),
		"prctl PR_SET_NAME":                     res(unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&[]byte("probe\x00")[0])), 0, 0, 0)),
		"prctl PR_GET_NAME, high bits":          res(rawErr(unix.Syscall6(unix.SYS_PRCTL, unix.PR_GET_NAME|1<<32, uintptr(unsafe.Pointer(&make([]byte, 16)[0])), 0, 0, 0, 0))),
		"prctl PR_SET_DUMPABLE, high bits":      res(rawErr(unix.Syscall6(unix.SYS_PRCTL, unix.PR_SET_DUMPABLE|1<<32, 1, 0, 0, 0, 0))),
		"prctl 1000 (no such option)":           res(rawErr(unix.Syscall6(unix.SYS_PRCTL, 1000, 0, 0, 0, 0, 0))),
		"landlock_create_ruleset":               res(rawErr(unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, 1))), // LANDLOCK_CREATE_RULESET_VERSION
		"ioctl FS_IOC_ADD_ENCRYPTION_KEY":       res(rawErr(unix.Syscall(unix.SYS_IOCTL, 0, unix.FS_IOC_ADD_ENCRYPTION_KEY, 0))),
		"mbind":                                 res(rawErr(unix.Syscall6(unix.SYS_MBIND, 0, 0, 0, 0, 0, 0))),
		"set_mempolicy (MPOL_DEFAULT)":          res(rawErr(unix.Syscall(unix.SYS_SET_MEMPOLICY, 0, 0, 0))),
	}
	json.NewEncoder(os.Stdout).Encode(out)
}

// tempFile opens a new file without a name in the temporary directory.
func tempFile() (int, error) {
	return unix.Open(os.TempDir(), unix.O_RDWR|unix.O_TMPFILE, 0o600)
}

// fallocateProbe allocates a page of a new file in the temporary directory
// in the given mode.
func fallocateProbe(mode uint32) string {
	fd, err := tempFile()
	if err != nil {
		return err.Error()
	}
	defer unix.Close(fd)
	_, _, e := unix.Syscall6(unix.SYS_FALLOCATE, uintptr(fd), uintptr(mode), 0, 4096, 0, 0)
	return errnoName(e)
}

// lockProbe locks the first byte of a new file with fcntl command cmd, then
// asks through another open file description whether anything locks it.
func lockProbe(cmd int) string {
	fd, err := tempFile()
	if err != nil {
		return err.Error()
	}
	defer unix.Close(fd)
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 1}
	if err := unix.FcntlFlock(uintptr(fd), cmd, &lk); err != nil {
		return err.Error()
	}
	other, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_RDWR, 0)
	if err != nil {
		return err.Error()
	}
	defer unix.Close(other)
	q := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 1}
	if err := unix.FcntlFlock(uintptr(other), unix.F_OFD_GETLK, &q); err != nil {
		return "F_OFD_GETLK: " + err.Error()
	}
	if q.Type == unix.F_UNLCK {
		return "ok, not locked"
	}
	return "ok, locked"
}

// flockProbe takes flock(2)'s lock on a new file.
func flockProbe() error {
	fd, err := tempFile()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
}

// bindProbe gives one end of a socket pair an abstract address.
func bindProbe() string {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return err.Error()
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	err = unix.Bind(fds[0], &unix.SockaddrUnix{Name: fmt.Sprintf("@pyexec-seccomp-probe-%d", os.Getpid())})
	if err == nil {
		return "ok"
	}
	return unix.ErrnoName(err.(unix.Errno))
}

// pipeProbe moves a byte of a new file (splice, sendfile) or of a pipe
// (tee) into a pipe with syscall nr.
func pipeProbe(nr uintptr) string {
	fd, err := tempFile()
	if err != nil {
		return err.Error()
	}
	defer unix.Close(fd)
	unix.Write(fd, []byte("x"))
	var p, q [2]int
	if err := unix.Pipe(p[:]); err != nil {
		return err.Error()
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if err := unix.Pipe(q[:]); err != nil {
		return err.Error()
	}
	defer unix.Close(q[0])
	defer unix.Close(q[1])
	unix.Write(q[1], []byte("x"))
	var off int64
	var e unix.Errno
	switch nr {
	case unix.SYS_SPLICE:
		_, _, e = unix.Syscall6(nr, uintptr(fd), uintptr(unsafe.Pointer(&off)), uintptr(p[1]), 0, 1, 0)
	case unix.SYS_TEE:
		_, _, e = unix.Syscall6(nr, uintptr(q[0]), uintptr(p[1]), 1, 0, 0, 0)
	case unix.SYS_SENDFILE:
		_, _, e = unix.Syscall6(nr, uintptr(p[1]), uintptr(fd), uintptr(unsafe.Pointer(&off)), 1, 0, 0)
	}
	return errnoName(e)
}

// cloneProbe calls clone with a namespace flag. Should the filter let it
// through, the child exits at once.
func cloneProbe(flag uintptr) string {
	r, _, e := unix.RawSyscall6(unix.SYS_CLONE, flag|uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
	if e != 0 {
		return unix.ErrnoName(e)
	}
	if r == 0 {
		unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
	}
	var ws unix.WaitStatus
	unix.Wait4(int(r), &ws, 0, nil)
	return "ok"
}

// xattrProbe reads user.x of the test binary by path with syscall nr
// (getxattr and its kin share their first three arguments' meaning).
func xattrProbe(nr uintptr) string {
	path, _ := unix.BytePtrFromString(os.Args[0])
	name, _ := unix.BytePtrFromString("user.x")
	var buf [64]byte
	_, _, e := unix.Syscall6(nr, uintptr(unsafe.Pointer(path)), uintptr(unsafe.Pointer(name)), uintptr(unsafe.Pointer(&buf[0])), 64, 0, 0)
	return errnoName(e)
}

// fxattrProbe reads user.x of the test binary through a descriptor.
func fxattrProbe() string {
	fd, err := unix.Open(os.Args[0], unix.O_RDONLY, 0) // os.Open would start the netpoller: epoll
	if err != nil {
		return err.Error()
	}
	defer unix.Close(fd)
	_, err = unix.Fgetxattr(fd, "user.x", make([]byte, 64))
	if errno, ok := err.(unix.Errno); ok {
		return unix.ErrnoName(errno)
	}
	return "ok"
}

// mmapProbe maps 2 MiB with flags (where the host has no huge pages, an
// allowed MAP_HUGETLB fails with ENOMEM, not EPERM).
func mmapProbe(flags uintptr) string {
	addr, _, e := unix.Syscall6(unix.SYS_MMAP, 0, 2<<20, unix.PROT_READ|unix.PROT_WRITE, flags, ^uintptr(0), 0)
	if e == 0 {
		unix.Syscall(unix.SYS_MUNMAP, addr, 2<<20, 0)
	}
	return errnoName(e)
}

// fcntlProbe calls fcntl on a directory of its own (F_NOTIFY needs one).
func fcntlProbe(cmd, arg int) string {
	fd, err := unix.Open(os.TempDir(), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err.Error()
	}
	defer unix.Close(fd)
	_, _, e := unix.Syscall(unix.SYS_FCNTL, uintptr(fd), uintptr(cmd), uintptr(arg))
	return errnoName(e)
}

// sockoptProbe sets an int socket option on one end of a socketpair; level
// and option are passed whole, high bits included.
func sockoptProbe(level, opt uint64) string {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return err.Error()
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	v := int32(1 << 20)
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fds[0]), uintptr(level), uintptr(opt), uintptr(unsafe.Pointer(&v)), 4, 0)
	return errnoName(e)
}

func errnoName(e unix.Errno) string {
	if e == 0 {
		return "ok"
	}
	return unix.ErrnoName(e)
}

func socketpair(family int) string { return socketpairOf(family, unix.SOCK_STREAM) }

func socketpairOf(family, typ int) string {
	fds, err := unix.Socketpair(family, typ, 0)
	if err != nil {
		return unix.ErrnoName(err.(unix.Errno))
	}
	unix.Close(fds[0])
	unix.Close(fds[1])
	return "ok"
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
		"kill parent":                           "EPERM",
		"kill parent, high bits":                "EPERM",
		"kill parent's group":                   "EPERM",
		"kill everyone":                         "EPERM",
		"kill self":                             "ok",
		"mmap MAP_HUGETLB":                      "EPERM",
		"setsid":                                "EPERM",
		"getxattr":                              "ENOTSUP",
		"lgetxattr":                             "ENOTSUP",
		"listxattr":                             "ENOTSUP",
		"llistxattr":                            "ENOTSUP",
		"fgetxattr":                             "ENODATA", // allowed: no such attribute
		"mmap MAP_HUGETLB, shared":              "EPERM",
		"mmap anonymous":                        "ok",
		"mmap shared anonymous":                 "EPERM",
		"socket AF_INET":                        "EPERM",
		"socket AF_INET6":                       "EPERM",
		"socket AF_UNIX":                        "EPERM",
		"unshare":                               "EPERM",
		"ptrace":                                "EPERM",
		"x32 getpid":                            "ENOSYS",
		"clone3":                                "ENOSYS",
		"clone CLONE_NEWUSER":                   "EPERM",
		"clone CLONE_NEWNET":                    "EPERM",
		"pidfd_send_signal":                     "EPERM",
		"prlimit parent":                        "EPERM",
		"prlimit self (0)":                      "ok",
		"setpriority parent":                    "EPERM",
		"setpriority own uid":                   "EPERM",
		"setpriority self (0)":                  "ok",
		"sched_setaffinity parent":              "EPERM",
		"ioctl TIOCSTI":                         "EPERM",
		"socketpair AF_UNIX":                    "ok",
		"socketpair AF_INET":                    "EPERM",
		"socketpair AF_NETLINK":                 "EPERM",
		"prctl PR_SET_DUMPABLE":                 "EPERM",
		"prctl PR_GET_DUMPABLE":                 "ok",
		"move_pages":                            "EPERM",
		"tkill parent":                          "EPERM",
		"tgkill self":                           "ok",
		"ioctl TIOCSTI, high bits":              "EPERM",
		"ioctl FIOSETOWN":                       "EPERM",
		"ioctl SIOCSPGRP":                       "EPERM",
		"fcntl F_SETOWN":                        "EPERM",
		"fcntl F_SETOWN 0":                      "EPERM",
		"fcntl F_SETOWN_EX":                     "EPERM",
		"fcntl F_NOTIFY":                        "EPERM",
		"fcntl F_SETSIG":                        "ok",
		"fcntl F_GETFL":                         "ok",
		"SO_SNDBUF":                             "EPERM",
		"SO_RCVBUF":                             "EPERM",
		"SO_SNDBUFFORCE":                        "EPERM",
		"SO_SNDBUF, high bits":                  "EPERM",
		"SO_KEEPALIVE":                          "ok",
		"io_setup":                              "EPERM",
		"vmsplice":                              "EPERM",
		"epoll_create1":                         "EPERM",
		"socketpair AF_UNIX SOCK_DGRAM":         "EPERM",
		"socketpair AF_UNIX SOCK_DGRAM|CLOEXEC": "EPERM",
		"socketpair AF_UNIX SOCK_RAW":           "EPERM",
		"socketpair AF_UNIX SOCK_SEQPACKET":     "ok",
		"file_getattr (468, Linux 6.17)":        "ENOSYS",
		"file_setattr (469, Linux 6.17)":        "ENOSYS",
		"fallocate 0":                           "ENOTSUP",
		"splice":                                "EINVAL",
		"tee":                                   "EINVAL",
		"sendfile":                              "EINVAL",
		"fallocate FALLOC_FL_KEEP_SIZE":         "ENOTSUP",
		"fallocate PUNCH_HOLE|KEEP_SIZE":        "ENOTSUP",
		// Record locks succeed without locking (recordLockCommands).
		"fcntl F_SETLK":                    "ok, not locked",
		"fcntl F_SETLKW":                   "ok, not locked",
		"fcntl F_OFD_SETLK":                "ok, not locked",
		"fcntl F_OFD_SETLKW":               "ok, not locked",
		"flock":                            "ok",
		"SO_ATTACH_FILTER":                 "EPERM",
		"SO_ATTACH_BPF":                    "EPERM",
		"SO_ATTACH_REUSEPORT_CBPF":         "EPERM",
		"SO_ATTACH_REUSEPORT_EBPF":         "EPERM",
		"seccomp":                          "EPERM",
		"prctl PR_SET_SECCOMP":             "EPERM",
		"prctl PR_GET_SECCOMP":             "ok",
		"bind abstract":                    "EPERM",
		"prctl PR_FUTEX_HASH":              "EPERM",
		"prctl PR_SET_VMA":                 "EPERM",
		"prctl PR_SET_NAME":                "ok",
		"prctl PR_GET_NAME, high bits":     "ok", // the kernel reads the low 32 bits
		"prctl PR_SET_DUMPABLE, high bits": "EPERM",
		"prctl 1000 (no such option)":      "EPERM",
		"landlock_create_ruleset":          "EPERM",
		"ioctl FS_IOC_ADD_ENCRYPTION_KEY":  "EPERM",
		"mbind":                            "EPERM",
		"set_mempolicy (MPOL_DEFAULT)":     "ok",
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
