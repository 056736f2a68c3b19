package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// filesPerJob is how many files each job that may run at once can add to
// the host's open files before the jobs running end: far more than a job
// needs (its descriptors are at most --max-open-files; a mapped file stays
// open without one).
const filesPerJob = 1 << 16

// fileTableGrowth is worker.Limits.FileTableGrowth for jobs running at once:
// filesPerJob each, and at most a quarter of the host's table (fs.file-max),
// so that however many run they cannot fill it. An error where the host's
// count cannot be read.
func fileTableGrowth(jobs int) (int64, error) {
	b, err := os.ReadFile("/proc/sys/fs/file-nr")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return 0, fmt.Errorf("/proc/sys/fs/file-nr: %q, want three numbers", b)
	}
	tableSize, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || tableSize <= 0 {
		return 0, fmt.Errorf("/proc/sys/fs/file-nr: table size %q", f[2])
	}
	return min(int64(max(jobs, 1))*filesPerJob, tableSize/4), nil
}
