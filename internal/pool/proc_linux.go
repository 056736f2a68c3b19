package pool

import (
	"bytes"
	"os"
	"strconv"

	"github.com/python-executor/python-executor/internal/worker"
)

// dead reports whether w's process has exited or is exiting. Alive asks
// waitid, which reports a multi-threaded process only once its last thread
// is gone; the kernel shows its thread-group leader as a zombie in
// /proc/<pid>/stat before that, while the rest of its threads unwind. Either
// sign is enough: such a worker can take no job.
func dead(w *worker.Worker) bool {
	if !w.Alive() {
		return true
	}
	// w is an unreaped child of ours (Alive said so), so its pid is not
	// reused yet.
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(w.Pid()) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the command name, in parentheses that the name
	// itself may contain.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return false
	}
	switch stat[i+2] {
	case 'Z', 'X', 'x':
		return true
	}
	return false
}
