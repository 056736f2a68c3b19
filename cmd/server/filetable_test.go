package main

import (
	"strings"
	"testing"
)

// TestMappedFilesEndTheJob: a file a job maps stays open once its
// descriptor is closed, and every shared anonymous mapping is a file of its
// own, so RLIMIT_NOFILE does not see them; the host's table of open files
// is one for the whole host (outside attack round 11 held 1.5 million, 61%
// of it, from one job). The job ends once the host's count has grown by
// 65,536 per job that may run at once, the limit named; every setup, the
// memory cgroup's included (a file costs it a few hundred bytes).
func TestMappedFilesEndTheJob(t *testing.T) {
	for _, su := range setups {
		t.Run(su.name, func(t *testing.T) {
			s := startSetup(t, su, nil, "--pool-size", "1")
			// Two processes of 36,000 mappings each (vm.max_map_count is
			// 65,530 a process) of files opened and closed. (Shared
			// anonymous memory, another file each, is refused.)
			r := s.execute(t, scriptWithTimeout(heldByProcesses(`
import ctypes, mmap
def fill():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
    for i in range(36000):
        fd = os.open("/usr/bin/python3", os.O_RDONLY)
        libc.mmap(None, 4096, mmap.PROT_READ, mmap.MAP_PRIVATE, fd, 0)
        os.close(fd)`, 2, "held 72,000 files"), 30))
			want := "Open files limit exceeded: the host's open files grew by more than 65536 while the job ran"
			if msg, _ := r.Body["error"].(string); !strings.HasPrefix(msg, want) {
				t.Errorf("got %s, want %q", r.Raw, want)
			}
			// The worker goes on; a job with a few thousand mappings is fine.
			r = s.execute(t, script(`
import ctypes, mmap, os
def main():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
    held = 0
    for _ in range(3000):
        fd = os.open("/usr/bin/python3", os.O_RDONLY)
        held += libc.mmap(None, 4096, mmap.PROT_READ, mmap.MAP_PRIVATE, fd, 0) not in (None, ctypes.c_void_p(-1).value)
        os.close(fd)
    return held`))
			if r.Body["result"] != 3000.0 {
				t.Errorf("3,000 mappings: %s", r.Raw)
			}
		})
	}
}
