package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Level is how strongly jobs are isolated from the host.
type Level int

const (
	// LevelBasic: clean environment, private scratch directory, unprivileged
	// uid when the server is root, seccomp and rlimits. Jobs can still see
	// the host's filesystem (read access as the worker uid) and, through
	// unix sockets, its local services.
	LevelBasic Level = 1
	// LevelNamespaces: LevelBasic plus a bubblewrap sandbox per worker with
	// its own user, pid, network, mount, ipc, uts and cgroup namespaces.
	LevelNamespaces Level = 2
)

func (l Level) String() string {
	switch l {
	case LevelBasic:
		return "basic"
	case LevelNamespaces:
		return "namespaces"
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

// ParseLevel parses "basic" or "namespaces".
func ParseLevel(s string) (Level, error) {
	switch s {
	case "basic":
		return LevelBasic, nil
	case "namespaces":
		return LevelNamespaces, nil
	}
	return 0, fmt.Errorf("unknown isolation level %q (want basic or namespaces)", s)
}

// ErrLevelUnavailable is returned by New when the host cannot give the level
// the configuration requires.
var ErrLevelUnavailable = errors.New("isolation level unavailable")

// Config selects and tunes the sandbox.
type Config struct {
	// Mode is "auto" (namespaces when the host allows them, else basic),
	// "namespaces" or "basic".
	Mode string
	// MinLevel makes New fail unless at least this level is available.
	MinLevel Level
	// Bwrap is the bubblewrap binary. Default: bwrap found in PATH.
	Bwrap string
	// UID and GID run the workers when the server runs as root: worker i
	// of UIDs runs as UID+i, GID+i, so that workers cannot signal, trace or
	// share a process budget with one another. UIDs <= 1 gives every worker
	// the same uid.
	UID, GID int
	UIDs     int
	// RequireLandlock makes New fail unless the kernel gives Landlock ABI
	// LandlockFullABI or later.
	RequireLandlock bool
	// InsecureSharedUID lets a non-root server run at basic level without
	// Landlock's signal scoping (ABI 6): its jobs, under its own uid, can
	// then stop or kill it by signalling any of its threads. New refuses
	// that configuration otherwise.
	InsecureSharedUID bool
	// ScratchBytes caps each job's /tmp (namespaces) and its files (both).
	ScratchBytes int64
	// ScratchRoot holds per-worker scratch directories at LevelBasic.
	ScratchRoot string
	// PassEnv lists server environment variables passed to workers as they
	// are (for example OPENBLAS_CORETYPE). Everything else is dropped.
	PassEnv []string
	// JobMemoryBytes, when > 0 and the host allows it (root, cgroup v1
	// memory controller), caps the memory of all of a job's processes
	// together, on top of the per-process RLIMIT_AS.
	JobMemoryBytes int64
	// Root, when set, is a root filesystem (a Debian tree) whose /usr, /bin,
	// /lib* and /etc files the workers see instead of the host's: the jobs'
	// Python and packages come from there. Namespaces level only; New
	// refuses it at any other.
	Root string
}

// Sandbox builds worker commands at one isolation level.
type Sandbox struct {
	cfg    Config
	level  Level
	bwrap  string
	reason string // why the level is lower than namespaces, if it is
	asRoot bool
	memory *memoryCgroups // nil when jobs' total memory is not capped

	memoryReason string

	landlockABI    int    // 0 when the kernel has no Landlock
	landlockReason string // why landlockABI is 0

	uids    chan int // free worker uid offsets; nil when all workers share one
	uidLock *os.File // holds this server's worker uids (root only)
	swept   []int    // worker uids a dead server had left processes under
}

// Landlock returns the Landlock ABI the job processes confine themselves
// with (0 for none) and the rules they apply.
func (s *Sandbox) Landlock() (int, LandlockRules) {
	return s.landlockABI, landlockRules(s.level)
}

// LandlockStatus reports the Landlock ABI in use, and when it is 0, why.
func (s *Sandbox) LandlockStatus() (int, string) { return s.landlockABI, s.landlockReason }

// PerWorkerUIDs reports whether each worker runs under a uid of its own.
func (s *Sandbox) PerWorkerUIDs() bool { return s.uids != nil }

// Close removes what New set up on the host (the server's memory cgroup)
// and gives back its worker uids.
// Call it after every worker has exited.
func (s *Sandbox) Close() {
	if s.memory != nil {
		removeCgroup(s.memory.root)
	}
	if s.uidLock != nil {
		s.uidLock.Close()
	}
}

// Swept returns the worker uids under which New found, and killed,
// processes that a server before this one had left running.
func (s *Sandbox) Swept() []int { return s.swept }

// MemoryCgroup reports whether each job's processes together are capped by a
// memory cgroup, and if not, why.
func (s *Sandbox) MemoryCgroup() (bool, string) {
	if s.memory != nil {
		return true, ""
	}
	return false, s.memoryReason
}

// Level reports the isolation level the sandbox gives.
func (s *Sandbox) Level() Level { return s.level }

// tmpfsMounts are the writable tmpfs mounts inside a namespaces sandbox,
// each of ScratchBytes.
var tmpfsMounts = []string{"/tmp", "/dev/shm"}

// TmpfsMounts returns the writable tmpfs mounts inside each worker's
// sandbox, or none below LevelNamespaces. Their size is bounded; the number
// of files in them, kernel memory no process's size shows, is not: the
// template counts the inodes in use while a job runs.
func (s *Sandbox) TmpfsMounts() []string {
	if s.level < LevelNamespaces {
		return nil
	}
	return tmpfsMounts
}

// Degraded returns why namespaces are not in use, or "" when they are.
func (s *Sandbox) Degraded() string { return s.reason }

// Process is a command ready to start, with the sandbox paths the worker must
// wipe between jobs and a cleanup to run once the process has exited.
type Process struct {
	Cmd     *exec.Cmd
	Scratch []string // directories, as the worker sees them, emptied after each job
	Cleanup func()
	// OOMKills counts the processes the kernel has killed in the worker's
	// memory cgroup (always 0 without one).
	OOMKills func() int64
	// MemoryCgroup is true when a memory cgroup caps the memory of all of
	// the worker's processes together; without one the template watches a
	// job's processes itself.
	MemoryCgroup bool
	// KillAll SIGKILLs every process in the worker's cgroup, wherever it
	// moved in the process tree; without a cgroup it does nothing, and the
	// caller's process-group kill is all there is.
	KillAll func()
}

// ProgramFD is the file descriptor on which the worker program's source must
// be open in the started process (cmd.ExtraFiles[ProgramFD-3]). Reading the
// program from a descriptor means no file of the server's has to be visible
// to, or readable by, the worker's uid.
const ProgramFD = 5

// workerPath is where the worker program appears inside the namespaces sandbox.
const workerPath = "/opt/python-executor/worker.py"

// Command returns a process that runs python on the worker program inside a
// new sandbox. python must be an absolute path under /usr so that it exists
// inside the sandbox too. The caller supplies the program on ProgramFD.
func (s *Sandbox) Command(python string) (*Process, error) {
	if !filepath.IsAbs(python) {
		return nil, fmt.Errorf("python %q must be an absolute path", python)
	}
	uid, gid, release, err := s.takeUID()
	if err != nil {
		return nil, err
	}
	p, err := s.command(python, uid, gid)
	if err != nil {
		release()
		return nil, err
	}
	cleanup := p.Cleanup
	p.Cleanup = func() { cleanup(); release() }
	if s.memory == nil {
		p.OOMKills = func() int64 { return 0 }
		p.KillAll = func() {}
		return p, nil
	}
	// Enter the worker's memory cgroup before exec, so that everything the
	// worker ever starts is born inside it.
	dir, err := s.memory.create(uid) // only ever set up when the server is root
	if err != nil {
		p.Cleanup()
		return nil, err
	}
	cmd := p.Cmd
	wrapped := exec.Command("/bin/sh", append([]string{"-c", `echo $$ > "$0/cgroup.procs" && unset PWD OLDPWD && exec "$@"`, dir, cmd.Path}, cmd.Args[1:]...)...)
	wrapped.Args[0] = cmd.Args[0]
	wrapped.Env, wrapped.Dir, wrapped.SysProcAttr = cmd.Env, cmd.Dir, cmd.SysProcAttr
	p.Cmd = wrapped
	withUID := p.Cleanup
	p.Cleanup = func() { killGroup(dir); removeCgroup(dir); withUID() }
	p.OOMKills = func() int64 { return oomKills(dir) }
	p.MemoryCgroup = true
	p.KillAll = func() { killGroup(dir) }
	return p, nil
}

func (s *Sandbox) command(python string, uid, gid int) (*Process, error) {
	if s.level == LevelNamespaces {
		args := append(s.bwrapArgs(true), "--", python, "-I", "-B", workerPath)
		cmd := exec.Command(s.bwrap, args...)
		cmd.Args[0] = "python-executor-sandbox"
		cmd.Env = s.env("/tmp")
		cmd.Dir = "/"
		cmd.SysProcAttr = s.sysProcAttr(uid, gid)
		return &Process{Cmd: cmd, Scratch: []string{"/tmp", "/dev/shm"}, Cleanup: func() {}}, nil
	}
	dir, err := os.MkdirTemp(s.cfg.ScratchRoot, "job-")
	if err != nil {
		return nil, fmt.Errorf("creating scratch directory: %w", err)
	}
	if s.asRoot {
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("handing scratch directory to uid %d: %w", uid, err)
		}
	}
	cmd := exec.Command(python, "-I", "-B", "/dev/fd/"+strconv.Itoa(ProgramFD))
	cmd.Env = s.env(dir)
	cmd.Dir = dir
	cmd.SysProcAttr = s.sysProcAttr(uid, gid)
	return &Process{Cmd: cmd, Scratch: []string{dir}, Cleanup: func() { os.RemoveAll(dir) }}, nil
}

// env is the worker's whole environment: an allow-list, never os.Environ().
func (s *Sandbox) env(home string) []string {
	env := []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=" + home,
		"TMPDIR=" + home,
		"LANG=C.UTF-8",
		"LC_ALL=C.UTF-8",
		"OPENBLAS_NUM_THREADS=1",
		"OMP_NUM_THREADS=1",
		"MKL_NUM_THREADS=1",
		"NUMEXPR_NUM_THREADS=1",
		"MPLBACKEND=Agg",
		"MPLCONFIGDIR=" + home,
	}
	for _, k := range s.cfg.PassEnv {
		if v, ok := os.LookupEnv(k); ok && !strings.ContainsRune(k, '=') {
			env = append(env, k+"="+v)
		}
	}
	return env
}
