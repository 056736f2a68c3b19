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
	// Debugging and reading other processes.
	"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
	// Namespaces and mounts.
	"mount", "umount2", "unshare", "setns", "pivot_root", "chroot",
	"open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
	// Keyrings.
	"keyctl", "add_key", "request_key",
	// eBPF, perf, userfaultfd, io_uring.
	"bpf", "perf_event_open", "userfaultfd",
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	// Kernel and module loading, system-wide state.
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
	"reboot", "swapon", "swapoff", "acct", "syslog", "quotactl",
	"settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
	"sethostname", "setdomainname", "iopl", "ioperm", "vhangup",
	"open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "fanotify_init",
	"personality", "uselib", "nfsservctl",
	// SysV IPC: objects would outlive the job.
	"shmget", "shmat", "shmctl", "shmdt", "msgget", "msgsnd", "msgrcv", "msgctl",
	"semget", "semop", "semtimedop", "semctl",
}

// signalSyscalls take a target pid (or tgid) as their first argument.
var signalSyscalls = []string{"kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open"}

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
		// Inside the sandbox: 1 is bubblewrap's init, 2 the template.
		return Seccomp([]int{1, 2})
	}
	return Seccomp([]int{workerPid, os.Getpid()})
}

// Seccomp returns a job filter as a classic BPF program: sock_filter records
// of 8 bytes, in host byte order, ready for prctl(PR_SET_SECCOMP). The
// filter
//   - kills any process that uses a foreign syscall ABI (i386 on amd64; the
//     library refuses x32 with ENOSYS),
//   - refuses deniedSyscalls, and sockets of every family but AF_UNIX,
//   - refuses to signal (or open a pidfd on) the protected pids, and every
//     negative target: process groups and kill(-1), "everyone",
//
// all with EPERM, and allows the rest.
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
	policy := seccomp.Policy{
		DefaultAction: seccomp.ActionAllow,
		// A syscall must appear in one group only: once its number
		// matches, the library does not look at later groups.
		Syscalls: []seccomp.SyscallGroup{
			{Action: seccomp.ActionErrno, Names: deniedSyscalls},
			{Action: seccomp.ActionErrno, NamesWithCondtions: append(signals, seccomp.NameWithConditions{
				Name:       "socket",
				Conditions: []seccomp.Condition{{Argument: 0, Operation: seccomp.NotEqual, Value: unix.AF_UNIX}},
			})},
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
	// The library lets other architectures through to the default action,
	// which here is allow: kill them before its program runs.
	prog := append([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // seccomp_data.arch
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(native.ID), SkipTrue: 1},
		bpf.RetConstant{Val: unix.SECCOMP_RET_KILL_PROCESS},
	}, insns...)
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
