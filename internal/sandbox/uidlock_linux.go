package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// uidLockDir is where a root server records the worker uids it holds: /run
// is the host's (a systemd unit's PrivateTmp hides /tmp, not /run), and
// only root can write it.
var uidLockDir = "/run/python-executor"

// uidLockName is the file whose byte i stands for uid i.
const uidLockName = "worker-uids.lock"

// lockUIDs claims worker uids first..first+n-1 for this process with a POSIX
// record lock on those bytes of one file, so that two servers on one host
// cannot share a uid: each kills every process of a uid it takes back, the
// other's workers included. The kernel drops the lock when the process dies,
// however it dies. A shared lock is for a server whose workers all share one
// uid and which therefore sweeps none: several may share that uid, but no
// server may hold it in its range. Overlapping ranges conflict; the error names the server
// that holds one, and how to pick another range.
func lockUIDs(first, n int, shared bool) (*os.File, error) {
	f, err := lockUIDsIn(uidLockDir, first, n, shared)
	if err != nil && !errors.Is(err, errUIDsHeld) {
		return nil, fmt.Errorf("recording which worker uids this server holds (a root server needs a writable %s): %w", uidLockDir, err)
	}
	return f, err
}

var errUIDsHeld = errors.New("worker uids held by another server")

func lockUIDsIn(dir string, first, n int, shared bool) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, uidLockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	// An open file description's lock, not a process's: closing another
	// descriptor of the file does not drop it, and two sandboxes of one
	// process conflict like two servers. gVisor has only the process's
	// kind (EINVAL), which serves as well in a server that opens this file
	// once.
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: int64(first), Len: int64(n)}
	if shared {
		lk.Type = unix.F_RDLCK
	}
	err = unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
	if errors.Is(err, unix.EINVAL) {
		err = unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk)
	}
	if err == nil {
		return f, nil
	}
	f.Close()
	if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) {
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return nil, fmt.Errorf("%w: uids %d-%d overlap those of %s (recorded in %s); "+
		"give each server on a host a range of its own with --worker-uid and --worker-gid, or fewer --worker-uids",
		errUIDsHeld, first, first+n-1, holders(path, first, n), path)
}

// holders names the processes whose lock on path overlaps first..first+n-1,
// read from the "lock:" lines of /proc/<pid>/fdinfo (OFD locks have no
// owner pid that F_OFD_GETLK could report).
func holders(path string, first, n int) string {
	want, err := os.Stat(path)
	if err != nil {
		return "another server"
	}
	var names []string
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		for _, fd := range fds {
			st, err := os.Stat(filepath.Join("/proc", p.Name(), "fd", fd.Name()))
			if err != nil || !os.SameFile(st, want) {
				continue
			}
			info, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "fdinfo", fd.Name()))
			if lo, hi, ok := lockRange(info); ok && lo < int64(first+n) && int64(first) <= hi {
				names = append(names, fmt.Sprintf("process %d%s, which holds uids %d-%d", pid, commOf(pid), lo, hi))
			}
		}
	}
	if len(names) == 0 {
		return "another server"
	}
	return strings.Join(names, "; ")
}

// lockRange reads the first lock of an fdinfo file:
// "lock:\t1: OFDLCK ADVISORY  WRITE -1 fe:00:9773058 1900000000 1900000015".
func lockRange(fdinfo []byte) (lo, hi int64, ok bool) {
	for _, line := range strings.Split(string(fdinfo), "\n") {
		rest, found := strings.CutPrefix(line, "lock:")
		f := strings.Fields(rest)
		if !found || len(f) < 2 {
			continue
		}
		lo, err1 := strconv.ParseInt(f[len(f)-2], 10, 64)
		hi, err2 := strconv.ParseInt(f[len(f)-1], 10, 64)
		return lo, hi, err1 == nil && err2 == nil
	}
	return 0, 0, false
}

// uidsInUse returns the uids in first..first+n-1 that some live process
// (zombies aside: they hold nothing and cannot be killed) runs as, by its
// real, effective, saved or filesystem uid.
func uidsInUse(first, n int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	seen := map[int]bool{}
	var uids []int
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		for _, uid := range statusUIDs(status) {
			if uid >= first && uid < first+n && !seen[uid] {
				seen[uid] = true
				uids = append(uids, uid)
			}
		}
	}
	return uids
}

// statusUIDs reads the four uids of a /proc/<pid>/status file, or none for a
// zombie.
func statusUIDs(status []byte) []int {
	var uids []int
	for _, line := range bytes.Split(status, []byte("\n")) {
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		switch string(key) {
		case "State":
			if v := bytes.TrimSpace(val); len(v) > 0 && (v[0] == 'Z' || v[0] == 'X') {
				return nil
			}
		case "Uid":
			for _, f := range bytes.Fields(val) {
				if uid, err := strconv.Atoi(string(f)); err == nil {
					uids = append(uids, uid)
				}
			}
		}
	}
	return uids
}

// commOf returns " (name)" for a live process, or "".
func commOf(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return ""
	}
	return " (" + string(bytes.TrimSpace(b)) + ")"
}

// subordinateOverlap reports the first entry of file (/etc/subuid or
// /etc/subgid: "name:first:count" lines) whose ids overlap first..first+n-1:
// rootless containers run as those ids, and a root server kills every
// process of a worker uid it takes back.
func subordinateOverlap(file string, first, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) != 3 {
			continue
		}
		start, err1 := strconv.Atoi(f[1])
		count, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil || count <= 0 {
			continue
		}
		if start < first+n && first < start+count {
			return fmt.Sprintf("%s gives %s ids %d-%d", file, f[0], start, start+count-1)
		}
	}
	return ""
}

// claimUIDs makes the workers' uids this server's own, for a root server: no
// host user's subordinate ids among them, no overlap with another live
// server's range (lockUIDs), and nothing left running under them by a server
// that died: those processes are killed, and Swept reports their uids.
func (s *Sandbox) claimUIDs() error {
	n := max(s.cfg.UIDs, 1)
	for _, ids := range []struct {
		file  string
		first int
	}{{"/etc/subuid", s.cfg.UID}, {"/etc/subgid", s.cfg.GID}} {
		if o := subordinateOverlap(ids.file, ids.first, n); o != "" {
			return fmt.Errorf("worker ids %d-%d overlap subordinate ids (%s): rootless containers run as them, "+
				"and a root server kills every process of a worker uid it takes back; choose --worker-uid and --worker-gid outside them",
				ids.first, ids.first+n-1, o)
		}
	}
	f, err := lockUIDs(s.cfg.UID, n, s.uids == nil)
	if err != nil {
		return err
	}
	s.uidLock = f
	if s.uids != nil {
		for _, uid := range uidsInUse(s.cfg.UID, n) {
			sweepUID(uid, s.cfg.GID+uid-s.cfg.UID)
			s.swept = append(s.swept, uid)
		}
	}
	return nil
}
