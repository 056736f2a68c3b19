package sandbox

import (
	"os"
	"path/filepath"
	"sort"
)

// LandlockRules is what a job process may touch once it has confined itself
// with Landlock (python/worker.py install_landlock). Everything else on the
// filesystem is denied, whatever its permission bits say.
type LandlockRules struct {
	Read    []string `json:"read"`    // read and execute, recursively
	Write   []string `json:"write"`   // every right, recursively (besides the job's own scratch directory)
	Devices []string `json:"devices"` // device files opened for reading and writing
}

// devices are the character devices a job may open for writing, and
// readDevices those it may only read. /dev/zero is read-only: a shared
// writable mapping of it is shared anonymous memory, whose pages outlive
// their mapping (see the mmap rule in Seccomp).
var (
	devices     = []string{"/dev/null", "/dev/full"}
	readDevices = []string{"/dev/zero", "/dev/random", "/dev/urandom"}
)

// etcFiles are the only files of /etc a job needs: the dynamic loader's
// cache (to start a program), time zones, Python's, matplotlib's and
// fontconfig's configuration. bubblewrap binds the same ones into its
// sandbox (from the jobs' root, when there is one).
var etcFiles = []string{"/etc/alternatives", "/etc/fonts", "/etc/ld.so.cache", "/etc/localtime", "/etc/matplotlibrc", "/etc/python3", "/etc/python3.11", "/etc/python3.13"}

// landlockRules returns the rules for jobs at level.
func landlockRules(level Level) LandlockRules {
	if level == LevelNamespaces {
		// The sandbox's root holds only what bubblewrap bound into it.
		return LandlockRules{
			Read:    append(append([]string{"/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32", "/proc"}, etcFiles...), readDevices...),
			Write:   []string{"/dev/shm"},
			Devices: devices,
		}
	}
	// The host's root: /usr but /usr/local (what was installed by hand: the
	// server's own binary in the image, toolchains), the few /etc files, and
	// of /proc only two system files: not even the job's own directory,
	// whose net/ and mountinfo describe the host.
	read := usrBut("local")
	read = append(read, "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32", "/proc/cpuinfo", "/proc/meminfo")
	return LandlockRules{Read: append(append(read, etcFiles...), readDevices...), Devices: devices}
}

// usrBut lists /usr's entries except the named ones.
func usrBut(except ...string) []string {
	entries, err := os.ReadDir("/usr")
	if err != nil {
		return []string{"/usr"} // nothing better is known; the sandbox still denies the rest
	}
	var out []string
	for _, e := range entries {
		skip := false
		for _, x := range except {
			skip = skip || e.Name() == x
		}
		if !skip {
			out = append(out, filepath.Join("/usr", e.Name()))
		}
	}
	sort.Strings(out)
	return out
}
