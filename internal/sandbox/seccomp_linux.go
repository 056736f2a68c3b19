package sandbox

import (
	"encoding/binary"
	"fmt"
	"os"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// deniedSyscalls are refused with EPERM inside a job. They are the kernel's
// larger attack surface and nothing numpy, pandas or ordinary Python needs.
var deniedSyscalls = []string{
	// Debugging, reading and steering other processes. pidfd_send_signal,
	// process_madvise and process_mrelease take a pidfd, which can come from
	// opening /proc/<pid>: the filter cannot tell whose it is.
	"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
	"pidfd_send_signal", "process_madvise", "process_mrelease", "move_pages", "migrate_pages",
	// Namespaces and mounts.
	"mount", "umount2", "unshare", "setns", "pivot_root", "chroot",
	"open_tree", "open_tree_attr", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
	"listmount", "statmount",
	// Keyrings.
	"keyctl", "add_key", "request_key",
	// eBPF, perf, userfaultfd, io_uring.
	"bpf", "perf_event_open", "userfaultfd",
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	// Kernel and module loading, system-wide state.
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
	"reboot", "swapon", "swapoff", "acct", "syslog", "quotactl", "quotactl_fd",
	"settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
	"sethostname", "setdomainname", "iopl", "ioperm", "vhangup",
	"open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "fanotify_init",
	"personality", "uselib", "nfsservctl",
	// Anonymous files hold memory that no rlimit or watch of the job's
	// processes counts (each up to RLIMIT_FSIZE, one per descriptor).
	"memfd_create", "memfd_secret",
	// POSIX message queues: created in the IPC namespace before Landlock
	// refuses the open, they would outlive the job (and a few hundred fill
	// the host's table at basic level).
	"mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr",
	// Extended attributes: Landlock does not govern them, so a job could
	// leave data on directories that outlive it (its scratch root) or hold
	// memory on tmpfs beyond its size.
	"setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr", "setxattrat", "removexattrat",
	// inotify: watching /usr or /tmp tells one tenant what another opens
	// (so does dnotify, fcntl F_NOTIFY: see fcntlRefused).
	"inotify_init", "inotify_init1", "inotify_add_watch",
	// tkill names a thread by its tid alone: any thread of the server or
	// the template, which the filter cannot list. glibc signals threads with
	// tgkill, whose thread group the filter checks.
	"tkill",
	// setsid: where the kernel groups processes by session for scheduling
	// (autogroup, on by default), each session gets as much CPU as all of
	// another job's processes together: a job of 60 sessions slowed a
	// neighbour on another worker 7 to 9 times (outside attack round 13).
	// The job process has a session of its own; all it starts stays in it.
	"setsid",
	// epoll watches count against a budget per uid (fs.epoll.max_user_watches)
	// that a non-root server shares with its jobs: filled, the server could
	// not accept a connection. worker.py points selectors at poll(2).
	"epoll_create", "epoll_create1",
	// Kernel AIO contexts come from one host-wide table (fs.aio-max-nr):
	// one job could take it all. (glibc's POSIX aio uses threads instead.)
	"io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
	// vmsplice puts pages of the job's memory into a pipe, which keeps
	// them, a whole huge page for a byte of it, after the job unmaps them:
	// memory in no process's size, past every limit but a cgroup's.
	"vmsplice",
	// Seccomp filters of the job's own: compiled, as socket filters are
	// (filterOptions), into the host's BPF budget, up to 32,768
	// instructions per process. prctl(PR_SET_SECCOMP) is not in
	// allowedPrctls.
	"seccomp",
	// Landlock of the job's own (its process installs the server's rules
	// before this filter): a ruleset's rules hold kernel memory and their
	// inodes, which no limit counts. An outside attack kept 780,000
	// nameless files of the host's filesystem alive with rules on
	// O_TMPFILE descriptors it then closed (their inodes, not their disk,
	// at basic level), and 2.2 GiB of kernel memory in domains, each a
	// copy of 65,536 rules kept by an open file's credentials (round 17).
	"landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
	// Memory policies of ranges: on shared memory each range's policy is a
	// node of the hidden file's policy tree, which unmapping the range does
	// not free; an outside attack held 1.17 GiB of kernel memory from one
	// job that way, at every level (round 18). They are placement hints
	// (OpenBLAS's is ignored when refused); set_mempolicy, one policy per
	// thread, stays.
	"mbind", "set_mempolicy_home_node",
	// Sockets: a job makes unix socket pairs (socketpair, below), and no
	// socket of any other kind, at either level. A unix socket at basic
	// level reaches the host's sockets by path (docker.sock, D-Bus), which
	// Landlock does not govern; in a network namespace of its own a job
	// listened on one and filled its accept queue with 8,192 connections
	// whose clients had closed, 1.8 GiB that no descriptor limit, watch or
	// file table saw (outside attack round 19). bind gives even a pair's
	// socket an address: an abstract name, the host's at basic level, which
	// a job could take from a host service (X11's) for as long as it ran
	// (round 16); Landlock scopes connecting to abstract names, not
	// binding them.
	"socket", "bind",
	// SysV IPC: objects would outlive the job.
	"shmget", "shmat", "shmctl", "shmdt", "msgget", "msgsnd", "msgrcv", "msgctl",
	"semget", "semop", "semtimedop", "semctl",
}

// xattrReaders read a file's extended attributes by path. Landlock governs
// opening a file, not these: at basic level they read the host's files'
// attributes (user.* secrets, ACLs) past it (outside attack round 13).
// They answer EOPNOTSUPP, as on a filesystem without extended attributes,
// which callers such as shutil.copy2 already expect; the descriptor forms
// (fgetxattr, flistxattr) stay, on files the job could open.
var xattrReaders = []string{"getxattr", "lgetxattr", "listxattr", "llistxattr", "getxattrat", "listxattrat"}

// firstUnreviewedSyscall is the number of the first syscall (file_getattr,
// Linux 6.17) added after this filter was last reviewed against the kernel's
// table; the numbers are the same on every architecture from 424 on. It and
// every later one answer ENOSYS, as on an older kernel, so that a new
// syscall is refused until someone has read what it does: file_setattr,
// the next one, sets inode flags by path past Landlock, and a job made its
// worker's scratch root synchronous for every later job with it (outside
// attack round 14).
const firstUnreviewedSyscall = 468

// pageMovers move pages of a file into a pipe, or between pipes, by
// reference: a byte left in a pipe keeps its whole page (a 2 MiB block of
// ext4's page cache) in memory that no process maps and no watch sees. An
// outside attack held 3 GiB with 1,536 bytes in pipes from one process
// (round 15); vmsplice, which does the same with the job's own memory, is
// in deniedSyscalls. They answer EINVAL, "not supported here", and
// shutil.copyfile and socket.sendfile fall back to reading and writing.
var pageMovers = []string{"splice", "tee", "sendfile"}

// signalSyscalls take a target pid (or tgid) as their first argument.
var signalSyscalls = []string{"kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open"}

// fcntlRefused are fcntl commands refused whatever their argument. F_SETOWN
// and F_SETOWN_EX name the process, group or thread that gets SIGIO (or the
// F_SETSIG signal, SIGKILL included) when a descriptor becomes ready: any
// thread of the server or the template, past the signal rules above.
// F_NOTIFY (dnotify) reports accesses to a directory's files by anyone,
// other tenants included.
var fcntlRefused = []uint64{unix.F_SETOWN, unix.F_SETOWN_EX, unix.F_NOTIFY}

// recordLockCommands are fcntl's byte-range lock commands, POSIX and open
// file description forms (F_SETLK64 and friends are the same numbers on
// 64-bit machines). Each range locked is a kernel record that no rlimit,
// memory watch or cgroup (on the kernels we run on) counts, and a file may
// have any number: a job held 1.7-2 GiB of them, past its 1 GiB limit and
// its worker's memory cgroup, on files it had unlinked and kept only mapped
// (outside attack round 16). They succeed without locking: sqlite3 and the
// like keep working on the job's own files, and a job's processes can no
// longer exclude each other with them (nor hold up a host process that
// locks a file the job can read). F_GETLK stays: it truthfully finds no
// lock. flock(2) stays too: one lock per open file, which the file limits
// bound.
var recordLockCommands = []uint32{unix.F_SETLK, unix.F_SETLKW, unix.F_OFD_SETLK, unix.F_OFD_SETLKW}

// Socket options that let a socket's buffers grow past the system's
// default size: kernel memory that neither RLIMIT_AS nor the memory watch
// sees (a job of unix socketpairs filled with SO_SNDBUF raised queued 1.8 GiB
// per process).
var sockBufferOptions = []uint32{unix.SO_SNDBUF, unix.SO_RCVBUF, unix.SO_SNDBUFFORCE, unix.SO_RCVBUFFORCE}

// allowedPrctls are the prctl options a job may use; the rest are refused,
// an option newer than this list included, as new syscalls are
// (firstUnreviewedSyscall). Among the refused: PR_SET_DUMPABLE (a job stays
// non-dumpable, so no core dump of it reaches a piped core_pattern, such as
// systemd-coredump or apport, which ignores RLIMIT_CORE and writes to the
// host's disk), PR_SET_SECCOMP (filterOptions), PR_FUTEX_HASH (Linux 6.16:
// a private futex table of the size the caller asks, up to 1 GiB of kernel
// memory per process in one call, which no limit counted on non-root
// servers, and whose owner the OOM killer does not pick: outside attack
// round 17), PR_SET_VMA (names for anonymous mappings, kernel memory per
// mapping), PR_SET_MM, PR_SET_PTRACER, PR_SET_CHILD_SUBREAPER,
// PR_SCHED_CORE, PR_SET_SYSCALL_USER_DISPATCH and the architecture options
// of other machines.
var allowedPrctls = []uint32{
	unix.PR_SET_PDEATHSIG, unix.PR_GET_PDEATHSIG, unix.PR_GET_DUMPABLE, unix.PR_GET_KEEPCAPS,
	unix.PR_SET_KEEPCAPS, unix.PR_SET_NAME, unix.PR_GET_NAME, unix.PR_GET_SECCOMP, unix.PR_CAPBSET_READ,
	unix.PR_GET_TSC, unix.PR_GET_SECUREBITS, unix.PR_SET_TIMERSLACK, unix.PR_GET_TIMERSLACK,
	unix.PR_TASK_PERF_EVENTS_DISABLE, unix.PR_TASK_PERF_EVENTS_ENABLE, unix.PR_MCE_KILL_GET,
	unix.PR_GET_CHILD_SUBREAPER, unix.PR_SET_NO_NEW_PRIVS, unix.PR_GET_NO_NEW_PRIVS, unix.PR_GET_TID_ADDRESS,
	unix.PR_SET_THP_DISABLE, unix.PR_GET_THP_DISABLE, unix.PR_CAP_AMBIENT, unix.PR_GET_SPECULATION_CTRL,
	unix.PR_SET_SPECULATION_CTRL, unix.PR_SET_MDWE, unix.PR_GET_MDWE, unix.PR_GET_MEMORY_MERGE,
	unix.PR_GET_AUXV,
	// arm64: vector lengths, pointer authentication, tagged addresses,
	// shadow stacks (glibc may set them up in a program the job starts).
	unix.PR_SVE_SET_VL, unix.PR_SVE_GET_VL, unix.PR_PAC_RESET_KEYS, unix.PR_PAC_SET_ENABLED_KEYS,
	unix.PR_PAC_GET_ENABLED_KEYS, unix.PR_SET_TAGGED_ADDR_CTRL, unix.PR_GET_TAGGED_ADDR_CTRL,
	unix.PR_GET_SHADOW_STACK_STATUS, unix.PR_SET_SHADOW_STACK_STATUS, unix.PR_LOCK_SHADOW_STACK_STATUS,
}

// filterOptions attach a BPF program to a socket. The kernel compiles each
// into executable memory charged to one budget for every unprivileged
// process on the host (net.core.bpf_jit_limit): 4,000 filters on socket
// pairs took 234 of this host's 504 MiB, and once it is spent no process
// can install a seccomp filter, every new job process included (outside
// attack round 16). A job never needs them.
var filterOptions = []uint32{unix.SO_ATTACH_FILTER, unix.SO_ATTACH_BPF, unix.SO_ATTACH_REUSEPORT_CBPF,
	unix.SO_ATTACH_REUSEPORT_EBPF}

// selfOnlySyscalls act on the process named by their first argument, 0 being
// the caller. Another process of the same uid (the server itself, at basic
// level as a non-root uid) could be reniced, pinned, have its limits cut or
// its robust futex list read: they are refused unless the target is 0.
// (Comparing all 64 bits refuses a few harmless calls whose high bits are
// set; it never allows one whose low 32 bits, all the kernel reads, are not 0.)
var selfOnlySyscalls = []string{"prlimit64", "sched_setaffinity", "sched_setscheduler", "sched_setparam",
	"sched_setattr", "get_robust_list"}

// sockTypeMask is the part of socket(2)'s type argument that holds the
// type; SOCK_NONBLOCK and SOCK_CLOEXEC are above it.
const sockTypeMask = 0xf

// Namespace flags of clone(2) (arg 0 on x86-64 and arm64).
const cloneNamespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET

// ioctls refused: terminal input injection and control, the ioctl forms
// of F_SETOWN, FIOSETOWN and SIOCSPGRP (linux/sockios.h), and fscrypt's
// keys, which a filesystem with encryption keeps in a keyring of its own
// after the job (at basic level, the host's).
var refusedIoctls = []uint64{unix.TIOCSTI, unix.TIOCLINUX, 0x8901, 0x8902,
	unix.FS_IOC_ADD_ENCRYPTION_KEY, unix.FS_IOC_REMOVE_ENCRYPTION_KEY, unix.FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS}

// argBlock returns instructions that, for syscall nr, return ret when the
// low 32 bits of argument arg are among values (in) or are none of them
// (!in), and otherwise go on to the next instruction after the block, as
// they do for every other syscall.
func argBlock(nr, arg uint32, values []uint32, in bool, ret uint32) []bpf.Instruction {
	n := len(values)
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 0, Size: 4}, // seccomp_data.nr
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: uint8(n + 2)},
		bpf.LoadAbsolute{Off: argLow(arg), Size: 4},
	}
	for i, v := range values {
		var skipTrue, skipFalse uint8
		if in {
			skipTrue = uint8(n - 1 - i) // to the return
			if i == n-1 {
				skipFalse = 1 // past it
			}
		} else {
			skipTrue = uint8(n - i) // past the return
		}
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: v, SkipTrue: skipTrue, SkipFalse: skipFalse})
	}
	return append(prog, bpf.RetConstant{Val: ret})
}

// argLow is the offset of the low 32 bits of argument arg in seccomp_data:
// all of it that the kernel reads for an int argument.
func argLow(arg uint32) uint32 {
	off := 16 + 8*arg // offsetof(struct seccomp_data, args[arg])
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		off += 4 // big-endian: the low word comes second
	}
	return off
}

// equal32 matches when the low 32 bits of argument arg equal v, whatever the
// high bits hold: the kernel truncates an int argument, so kill(0x100000002)
// signals pid 2. The library compares 64 bits for Equal, so the match is built
// from its bit tests: every bit of v set, and no other low bit.
func equal32(arg uint32, v uint32) []seccomp.Condition {
	conds := []seccomp.Condition{{Argument: arg, Operation: seccomp.BitsNotSet, Value: uint64(^v)}}
	for bit := uint32(1); bit != 0; bit <<= 1 {
		if v&bit != 0 {
			conds = append(conds, seccomp.Condition{Argument: arg, Operation: seccomp.BitsSet, Value: uint64(bit)})
		}
	}
	return conds
}

// JobFilter returns the seccomp filter for the jobs of the worker whose
// launcher has pid workerPid (see Seccomp).
func (s *Sandbox) JobFilter(workerPid int) ([]byte, error) {
	if s.level == LevelNamespaces {
		// Inside the sandbox the template is pid 1 (bubblewrap --as-pid-1).
		return Seccomp([]int{1})
	}
	return Seccomp([]int{workerPid, os.Getpid()})
}

// SignalSyscalls returns this machine's numbers for signalSyscalls: what a
// worker needs to protect, with a second filter stacked on the first, a pid
// only it knows (its zygote's; see worker.py).
func SignalSyscalls() ([]int, error) {
	native, err := arch.GetInfo("")
	if err != nil {
		return nil, err
	}
	nums := make([]int, 0, len(signalSyscalls))
	for _, name := range signalSyscalls {
		nr, ok := native.SyscallNames[name]
		if !ok {
			return nil, fmt.Errorf("seccomp: no syscall %s on %s", name, native.Name)
		}
		nums = append(nums, nr)
	}
	return nums, nil
}

// Seccomp returns a job filter as a classic BPF program: sock_filter records
// of 8 bytes, in host byte order, ready for prctl(PR_SET_SECCOMP). The
// filter
//   - kills any process that uses a foreign syscall ABI (i386 on amd64; the
//     library refuses x32 with ENOSYS),
//   - answers clone3 with ENOSYS: its flags are in a struct the filter
//     cannot read, and libc falls back to clone, whose flags it can,
//   - answers every syscall from firstUnreviewedSyscall on with ENOSYS,
//   - answers xattrReaders and fallocate with EOPNOTSUPP, and pageMovers
//     with EINVAL,
//   - answers recordLockCommands with 0, without locking,
//   - refuses prctl options not in allowedPrctls,
//   - refuses clone with any namespace flag, deniedSyscalls (every socket
//     and bind among them), refusedIoctls, fcntlRefused, socket buffers
//     grown past the default, filterOptions, selfOnlySyscalls aimed at
//     another process, socket pairs of every family but AF_UNIX and of the
//     datagram types (a stream or seqpacket pair's two ends belong to the
//     job), and mmap(MAP_HUGETLB) and mmap(MAP_SHARED|MAP_ANONYMOUS),
//   - refuses to signal (or open a pidfd on) the protected pids, and every
//     negative target: process groups and kill(-1), "everyone",
//
// all with EPERM unless said otherwise, and allows the rest.
func Seccomp(protected []int) ([]byte, error) {
	var signals []seccomp.NameWithConditions
	for _, name := range signalSyscalls {
		// Negative in 32 bits: the sign bit of the low word.
		signals = append(signals, seccomp.NameWithConditions{Name: name,
			Conditions: []seccomp.Condition{{Argument: 0, Operation: seccomp.BitsSet, Value: 1 << 31}}})
		for _, pid := range protected {
			signals = append(signals, seccomp.NameWithConditions{Name: name, Conditions: equal32(0, uint32(pid))})
		}
	}
	conditional := signals
	for _, name := range selfOnlySyscalls {
		conditional = append(conditional, seccomp.NameWithConditions{Name: name,
			Conditions: []seccomp.Condition{{Argument: 0, Operation: seccomp.NotEqual, Value: 0}}})
	}
	// setpriority(which, who) and ioprio_set(which, who): only the caller
	// itself (PRIO_PROCESS / IOPRIO_WHO_PROCESS and who 0), never a group
	// or a whole uid.
	conditional = append(conditional,
		seccomp.NameWithConditions{Name: "setpriority", Conditions: []seccomp.Condition{{Argument: 0, Operation: seccomp.NotEqual, Value: unix.PRIO_PROCESS}}},
		seccomp.NameWithConditions{Name: "setpriority", Conditions: []seccomp.Condition{{Argument: 1, Operation: seccomp.NotEqual, Value: 0}}},
		seccomp.NameWithConditions{Name: "ioprio_set", Conditions: []seccomp.Condition{{Argument: 0, Operation: seccomp.NotEqual, Value: 1}}},
		seccomp.NameWithConditions{Name: "ioprio_set", Conditions: []seccomp.Condition{{Argument: 1, Operation: seccomp.NotEqual, Value: 0}}},
		seccomp.NameWithConditions{Name: "clone", Conditions: []seccomp.Condition{{Argument: 0, Operation: seccomp.BitsSet, Value: cloneNamespaceFlags}}},
		// The kernel builds a pair of any family's sockets (loading its
		// module) before most families refuse pairs; TIPC makes them.
		seccomp.NameWithConditions{Name: "socketpair", Conditions: []seccomp.Condition{{Argument: 0, Operation: seccomp.NotEqual, Value: unix.AF_UNIX}}},
		// Huge pages come from the host's pool (vm.nr_hugepages), which
		// no rlimit, memory watch or cgroup v1 memory limit counts: an
		// outside attack drained it, one job holding 15 times its limit.
		// (shmget's SHM_HUGETLB and memfd_create's MFD_HUGETLB are refused
		// with their syscalls; hugetlbfs files are outside Landlock's
		// rules.)
		seccomp.NameWithConditions{Name: "mmap", Conditions: []seccomp.Condition{{Argument: 3, Operation: seccomp.BitsSet, Value: unix.MAP_HUGETLB}}},
		// Shared anonymous memory is a hidden tmpfs file whose pages stay
		// when the job unmaps them, as long as one page stays mapped: an
		// outside attack held 2.1 GiB that way on non-root servers, where
		// the memory watch sees only mapped pages (round 18). MAP_SHARED_VALIDATE
		// has MAP_SHARED's bit. (/dev/zero, the other way to such a file,
		// is read-only to jobs: LandlockRules.)
		seccomp.NameWithConditions{Name: "mmap", Conditions: []seccomp.Condition{
			{Argument: 3, Operation: seccomp.BitsSet, Value: unix.MAP_SHARED},
			{Argument: 3, Operation: seccomp.BitsSet, Value: unix.MAP_ANONYMOUS}}},
	)
	// A datagram socket of a pair still sends to any unix socket by path
	// (sendto, sendmsg's msg_name), which Landlock does not govern: at
	// basic level, the host's syslog or journald (outside attack round 14);
	// and datagrams whose sender has closed stay queued at the receiver.
	// SOCK_RAW is a datagram socket for AF_UNIX. Stream pairs refuse an
	// address; seqpacket pairs ignore it.
	for _, typ := range []uint64{unix.SOCK_DGRAM, unix.SOCK_RAW} {
		conds := []seccomp.Condition{
			{Argument: 0, Operation: seccomp.Equal, Value: unix.AF_UNIX},
			{Argument: 1, Operation: seccomp.BitsNotSet, Value: sockTypeMask &^ typ},
		}
		for bit := uint64(1); bit < sockTypeMask; bit <<= 1 {
			if typ&bit != 0 { // BitsSet matches when any of its bits is set
				conds = append(conds, seccomp.Condition{Argument: 1, Operation: seccomp.BitsSet, Value: bit})
			}
		}
		conditional = append(conditional, seccomp.NameWithConditions{Name: "socketpair", Conditions: conds})
	}
	for _, req := range refusedIoctls {
		conditional = append(conditional, seccomp.NameWithConditions{Name: "ioctl", Conditions: equal32(1, uint32(req))})
	}
	for _, cmd := range fcntlRefused {
		conditional = append(conditional, seccomp.NameWithConditions{Name: "fcntl", Conditions: equal32(1, uint32(cmd))})
	}
	for _, opt := range append(sockBufferOptions, filterOptions...) {
		conditional = append(conditional, seccomp.NameWithConditions{Name: "setsockopt",
			Conditions: append(equal32(1, unix.SOL_SOCKET), equal32(2, opt)...)})
	}
	policy := seccomp.Policy{
		DefaultAction: seccomp.ActionAllow,
		// A syscall must appear in one group only: once its number
		// matches, the library does not look at later groups.
		Syscalls: []seccomp.SyscallGroup{
			{Action: seccomp.ActionErrno, Names: deniedSyscalls},
			{Action: seccomp.ActionErrno | seccomp.Action(unix.ENOSYS), Names: []string{"clone3"}},
			// fallocate reserves a file's blocks at once, faster than any
			// watch: FALLOC_FL_KEEP_SIZE past the end of a file without
			// the RLIMIT_FSIZE check (one call took 8 GiB of the host's
			// disk in 3 ms at basic level, round 14), mode 0 within it but
			// for any number of files (2 GiB in 4 ms, round 15). glibc's
			// posix_fallocate then writes the blocks instead.
			{Action: seccomp.ActionErrno | seccomp.Action(unix.EOPNOTSUPP), Names: append([]string{"fallocate"}, xattrReaders...)},
			{Action: seccomp.ActionErrno | seccomp.Action(unix.EINVAL), Names: pageMovers},
			{Action: seccomp.ActionErrno, NamesWithCondtions: conditional},
		},
	}
	native, err := arch.GetInfo("")
	if err != nil {
		return nil, err
	}
	insns, err := policy.Assemble()
	if err != nil {
		return nil, err
	}
	fcntl, okFcntl := native.SyscallNames["fcntl"]
	prctl, okPrctl := native.SyscallNames["prctl"]
	if !okFcntl || !okPrctl {
		return nil, fmt.Errorf("seccomp: no syscall fcntl or prctl on %s", native.Name)
	}
	// The library lets other architectures through to the default action,
	// which here is allow: kill them before its program runs. Nor can it
	// answer 0 without the call (recordLockCommands) or allow a list of
	// argument values and refuse the rest (allowedPrctls).
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // seccomp_data.arch
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(native.ID), SkipTrue: 1},
		bpf.RetConstant{Val: unix.SECCOMP_RET_KILL_PROCESS},
		bpf.LoadAbsolute{Off: 0, Size: 4}, // seccomp_data.nr
		bpf.JumpIf{Cond: bpf.JumpLessThan, Val: firstUnreviewedSyscall, SkipTrue: 1},
		bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
	}
	prog = append(prog, argBlock(uint32(fcntl), 1, recordLockCommands, true, unix.SECCOMP_RET_ERRNO)...) // errno 0: returns 0
	prog = append(prog, argBlock(uint32(prctl), 0, allowedPrctls, false, unix.SECCOMP_RET_ERRNO|uint32(unix.EPERM))...)
	prog = append(prog, insns...)
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("assembling seccomp program: %w", err)
	}
	out := make([]byte, 0, 8*len(raw))
	for _, in := range raw {
		out = binary.NativeEndian.AppendUint16(out, in.Op)
		out = append(out, in.Jt, in.Jf)
		out = binary.NativeEndian.AppendUint32(out, in.K)
	}
	return out, nil
}
