package pool

import (
	"bytes"
	"os"
	"strconv"

	"github.com/python-executor/python-executor/internal/worker"
)

// dead reports whether w's process has exited or is about to. Alive asks
// waitid, which reports a process only once its last thread is gone; before
// that, /proc shows what is coming: the thread-group leader as a zombie
// while the other threads unwind, or a SIGKILL pending (sent, say, by the
// OOM killer) that the process has not acted on yet. Any of these is enough:
// such a worker can take no job.
func dead(w *worker.Worker) bool {
	if !w.Alive() {
		return true
	}
	// w is an unreaped child of ours (Alive said so), so its pid is not
	// reused yet.
	status, err := os.ReadFile("/proc/" + strconv.Itoa(w.Pid()) + "/status")
	if err != nil {
		return true
	}
	return exiting(status)
}

// sigkill is SIGKILL's bit in /proc/<pid>/status's signal masks.
const sigkill = 1 << (9 - 1)

// exiting reads a /proc/<pid>/status file: a zombie or dead state, or a
// SIGKILL pending for the thread or its group.
func exiting(status []byte) bool {
	for _, line := range bytes.Split(status, []byte("\n")) {
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		val = bytes.TrimSpace(val)
		switch string(key) {
		case "State":
			if len(val) > 0 && (val[0] == 'Z' || val[0] == 'X') {
				return true
			}
		case "SigPnd", "ShdPnd":
			if mask, err := strconv.ParseUint(string(val), 16, 64); err == nil && mask&sigkill != 0 {
				return true
			}
		}
	}
	return false
}
