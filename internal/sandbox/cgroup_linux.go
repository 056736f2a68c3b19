package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// memoryCgroups puts each worker in a cgroup v1 memory group of its own, so
// that a job's processes together, not only each one (RLIMIT_AS), stay under
// a limit. It needs root and a cgroup v1 memory hierarchy; cgroup v2 would
// need a delegated subtree and is not used yet.
type memoryCgroups struct {
	root  string // this server's group, under its own memory cgroup
	limit int64  // bytes per worker group
	next  atomic.Int64
}

// templateAllowance is what the template and the sandbox init use besides
// the job (measured: about 55 MiB PSS for a warm worker), with headroom.
const templateAllowance = 256 << 20

func newMemoryCgroups(jobBytes int64) (*memoryCgroups, error) {
	own, err := ownCgroup("memory")
	if err != nil {
		return nil, err
	}
	parent := filepath.Join("/sys/fs/cgroup/memory", own)
	removeStale(parent)
	root := filepath.Join(parent, fmt.Sprintf("python-executor-%d", os.Getpid()))
	if err := os.Mkdir(root, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	return &memoryCgroups{root: root, limit: jobBytes + templateAllowance}, nil
}

// removeStale removes the empty groups of servers that are gone: a server
// killed with SIGKILL leaves its own. It removes, never kills: a group that
// still holds processes stays, and so does the group of a pid that is alive
// (or reused). A server in another pid namespace sharing this parent would
// look gone, so emptiness is what makes removal safe: a worker's group is
// removed only in the moment between its creation and its process entering
// it, and that worker then fails to start and is replaced.
func removeStale(parent string) {
	entries, _ := os.ReadDir(parent)
	for _, e := range entries {
		pid, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "python-executor-"))
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "python-executor-") || err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		groups, _ := os.ReadDir(dir)
		for _, g := range groups {
			if g.IsDir() {
				os.Remove(filepath.Join(dir, g.Name()))
			}
		}
		os.Remove(dir)
	}
}

// ownCgroup returns this process's path in the cgroup v1 hierarchy of
// controller.
func ownCgroup(controller string) (string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) == 3 && parts[1] == controller {
			return parts[2], nil
		}
	}
	return "", fmt.Errorf("no cgroup v1 %s controller", controller)
}

// create makes one worker's group and returns its directory. cgroup.procs is
// handed to the worker's uid so that the worker's launcher can enter it.
func (m *memoryCgroups) create(uid int) (string, error) {
	dir := filepath.Join(m.root, "w-"+strconv.FormatInt(m.next.Add(1), 10))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", err
	}
	write := func(name, v string) error { return os.WriteFile(filepath.Join(dir, name), []byte(v), 0) }
	err := write("memory.limit_in_bytes", strconv.FormatInt(m.limit, 10))
	if err == nil {
		err = write("memory.swappiness", "0")
	}
	if err == nil {
		err = os.Chown(filepath.Join(dir, "cgroup.procs"), uid, -1)
	}
	if err != nil {
		os.Remove(dir)
		return "", fmt.Errorf("setting up memory cgroup: %w", err)
	}
	return dir, nil
}

// remove deletes a worker's group once its processes are gone (the kernel
// tears a pid namespace down asynchronously, so it retries for a while).
func removeCgroup(dir string) {
	for i := 0; i < 100; i++ {
		if err := os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killGroup SIGKILLs every process in the group until none is left (or a
// second has passed): the processes a worker started, whatever session or
// process group they moved to.
func killGroup(dir string) {
	for i := 0; i < 100; i++ {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		pids := strings.Fields(string(b))
		if err != nil || len(pids) == 0 {
			return
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// oomKills reads how many processes the kernel killed in the group for
// exceeding its limit.
func oomKills(dir string) int64 {
	b, err := os.ReadFile(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
