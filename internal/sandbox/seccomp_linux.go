package sandbox

import (
	"encoding/binary"
	"fmt"
	"sync"

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

var seccompOnce = sync.OnceValues(buildSeccomp)

// Seccomp returns the job filter as a classic BPF program: sock_filter records
// of 8 bytes, in host byte order, ready for prctl(PR_SET_SECCOMP). The
// filter kills any process that uses a foreign syscall ABI (i386 on
// amd64; the library refuses x32), refuses deniedSyscalls and every socket family
// but AF_UNIX with EPERM, and allows the rest.
func Seccomp() ([]byte, error) { return seccompOnce() }

func buildSeccomp() ([]byte, error) {
	policy := seccomp.Policy{
		DefaultAction: seccomp.ActionAllow,
		Syscalls: []seccomp.SyscallGroup{
			{Action: seccomp.ActionErrno, Names: deniedSyscalls},
			{Action: seccomp.ActionErrno, NamesWithCondtions: []seccomp.NameWithConditions{{
				Name: "socket",
				Conditions: []seccomp.Condition{{
					Argument: 0, Operation: seccomp.NotEqual, Value: unix.AF_UNIX,
				}},
			}}},
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
