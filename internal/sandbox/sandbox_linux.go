package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// New probes the host and returns a sandbox at the strongest level that Mode
// allows. It fails when the result would be below MinLevel.
func New(cfg Config) (*Sandbox, error) {
	if cfg.UID == 0 && cfg.GID == 0 {
		cfg.UID, cfg.GID = 65534, 65534
	}
	if cfg.ScratchRoot == "" {
		cfg.ScratchRoot = os.TempDir()
	}
	s := &Sandbox{cfg: cfg, level: LevelBasic, asRoot: os.Geteuid() == 0}
	if cfg.UID == 0 && s.asRoot {
		return nil, fmt.Errorf("refusing to run workers as root (uid 0)")
	}
	if _, err := Seccomp([]int{1}); err != nil {
		return nil, fmt.Errorf("%w: building the seccomp filter: %v", ErrLevelUnavailable, err)
	}
	switch cfg.Mode {
	case "basic":
		s.reason = "isolation mode basic was configured"
	case "auto", "namespaces", "":
		err := s.probeNamespaces()
		if err == nil {
			s.level = LevelNamespaces
			break
		}
		if cfg.Mode == "namespaces" {
			return nil, fmt.Errorf("%w: namespaces: %v", ErrLevelUnavailable, err)
		}
		s.reason = err.Error()
	default:
		return nil, fmt.Errorf("unknown isolation mode %q (want auto, namespaces or basic)", cfg.Mode)
	}
	if cfg.Root != "" && s.level != LevelNamespaces {
		// At basic level the jobs see the host's filesystem: no other
		// root can be given to them.
		return nil, fmt.Errorf("%w: a jobs' root (%s) needs namespaces isolation, and the host gives %s: %s",
			ErrLevelUnavailable, cfg.Root, s.level, s.reason)
	}
	s.landlockABI, s.landlockReason = landlockABI()
	if cfg.RequireLandlock && s.landlockABI < LandlockFullABI {
		why := s.landlockReason
		if why == "" {
			why = fmt.Sprintf("the kernel gives ABI %d", s.landlockABI)
		}
		return nil, fmt.Errorf("%w: Landlock ABI %d or later required: %s", ErrLevelUnavailable, LandlockFullABI, why)
	}
	if why := sharedUIDRefusal(s.level, s.asRoot, s.landlockABI); why != "" && !cfg.InsecureSharedUID {
		return nil, fmt.Errorf("%w: %s", ErrLevelUnavailable, why)
	}
	if s.asRoot && cfg.UIDs > 1 {
		s.uids = make(chan int, cfg.UIDs)
		for i := range cfg.UIDs {
			s.uids <- i
		}
	}
	if cfg.JobMemoryBytes > 0 {
		switch {
		case !s.asRoot:
			s.memoryReason = "the server does not run as root"
		default:
			m, err := newMemoryCgroups(cfg.JobMemoryBytes)
			if err != nil {
				s.memoryReason = err.Error()
			} else {
				s.memory = m
			}
		}
	}
	if s.level < cfg.MinLevel {
		s.Close()
		return nil, fmt.Errorf("%w: %s required, host gives %s: %s", ErrLevelUnavailable, cfg.MinLevel, s.level, s.reason)
	}
	if s.asRoot {
		if err := s.claimUIDs(); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// sharedUIDRefusal says why a sandbox must not run, or "". At basic level a
// non-root server's jobs run under its own uid, and only Landlock's signal
// scoping (ABI 6) keeps them from signalling the server: seccomp compares a
// signal's target with the server's pid, and kill(2) given the id of any of
// its threads signals the whole process (an outside attack stopped a server
// so).
func sharedUIDRefusal(level Level, asRoot bool, landlockABI int) string {
	if level != LevelBasic || asRoot || landlockABI >= LandlockFullABI {
		return ""
	}
	return fmt.Sprintf("at basic level a non-root server's jobs run under the server's own uid, and without Landlock ABI %d "+
		"(this host gives %d) nothing stops them from signalling its threads: run the server as root (a uid per worker), "+
		"where user namespaces work (namespaces level), or on Linux 6.12 or later; --insecure-shared-uid runs anyway",
		LandlockFullABI, landlockABI)
}

// probeNamespaces starts one throw-away sandbox with the exact options the
// workers get and checks that it came up with no network and its own pids.
func (s *Sandbox) probeNamespaces() error {
	bwrap := s.cfg.Bwrap
	if bwrap == "" {
		bwrap = "bwrap"
	}
	path, err := exec.LookPath(bwrap)
	if err != nil {
		return fmt.Errorf("bubblewrap not found: %v", err)
	}
	s.bwrap = path
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	args := append(s.bwrapArgs(false), "--", "/bin/sh", "-c",
		`test "$(cat /proc/self/stat | cut -d' ' -f1)" -lt 10 && test ! -e /sys/class/net/eth0 && test "$(ls /sys/class/net 2>/dev/null || echo lo)" = lo && echo ok`)
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = s.env("/tmp")
	cmd.Dir = "/"
	cmd.SysProcAttr = s.sysProcAttr(s.cfg.UID, s.cfg.GID)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("bubblewrap cannot create namespaces here: %v: %s", err, bytes.TrimSpace(out.Bytes()))
	}
	if !bytes.Equal(bytes.TrimSpace(out.Bytes()), []byte("ok")) {
		return fmt.Errorf("bubblewrap sandbox check failed: %q", out.String())
	}
	return nil
}

func (s *Sandbox) sysProcAttr(uid, gid int) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{
		Setpgid:   true,
		Pdeathsig: syscall.SIGKILL,
	}
	if s.asRoot {
		attr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	}
	return attr
}

// takeUID picks the uid and gid for a new worker. With per-worker uids, the
// returned release sweeps every process left under that uid (kill(-1) run as
// the uid itself: whatever session or process group they moved to) before
// the uid can be handed out again.
func (s *Sandbox) takeUID() (uid, gid int, release func(), err error) {
	if s.uids == nil {
		return s.cfg.UID, s.cfg.GID, func() {}, nil
	}
	var i int
	select {
	case i = <-s.uids:
	default:
		return 0, 0, nil, fmt.Errorf("all %d worker uids from %d are in use: raise --worker-uids", s.cfg.UIDs, s.cfg.UID)
	}
	uid, gid = s.cfg.UID+i, s.cfg.GID+i
	return uid, gid, func() {
		sweepUID(uid, gid)
		s.uids <- i
	}, nil
}

// sweepUID SIGKILLs every process running as uid, from a shell running as
// that uid (kill(-1) spares only the caller), and waits for it.
func sweepUID(uid, gid int) {
	cmd := exec.Command("/bin/sh", "-c", "kill -KILL -1 2>/dev/null; exit 0")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	cmd.Run()
}

// bwrapArgs are the bubblewrap options for one worker sandbox; with program,
// the worker program is copied from ProgramFD to workerPath.
func (s *Sandbox) bwrapArgs(program bool) []string {
	size := strconv.FormatInt(s.cfg.ScratchBytes, 10)
	root := strings.TrimRight(s.cfg.Root, "/") // "" for the host's
	args := []string{
		"--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc",
		"--unshare-uts", "--unshare-cgroup-try",
		"--uid", "1000", "--gid", "1000", "--hostname", "sandbox",
		"--die-with-parent", "--new-session", "--cap-drop", "ALL",
		// No bubblewrap init inside: the template is pid 1, so no process
		// without the template's protections (non-dumpable, reaping, and
		// no signals from inside the namespace) lives beside the jobs.
		"--as-pid-1",
		"--ro-bind", root + "/usr", "/usr",
		// /usr/local holds what was installed by hand (toolchains, the
		// server itself in the image), not Debian's Python packages.
		"--tmpfs", "/usr/local", "--remount-ro", "/usr/local",
	}
	// Merged-/usr hosts have /bin, /lib... as symlinks; others as directories.
	for _, d := range []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		src := root + d
		if target, err := os.Readlink(src); err == nil {
			args = append(args, "--symlink", target, d)
		} else if fi, err := os.Stat(src); err == nil && fi.IsDir() {
			args = append(args, "--ro-bind", src, d)
		}
	}
	for _, f := range etcFiles {
		args = append(args, "--ro-bind-try", root+f, f)
	}
	args = append(args, "--proc", "/proc", "--dev", "/dev")
	for _, m := range tmpfsMounts {
		args = append(args, "--size", size, "--tmpfs", m)
	}
	if program {
		args = append(args, "--ro-bind-data", strconv.Itoa(ProgramFD), workerPath)
	}
	return append(args, "--remount-ro", "/", "--chdir", "/tmp")
}
