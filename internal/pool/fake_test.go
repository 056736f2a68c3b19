package pool

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/python-executor/python-executor/internal/worker"
)

// The test binary doubles as a fake worker, the way os/exec's tests do: when
// started with PYEXEC_FAKE_WORKER set it speaks the worker protocol on fds 3
// and 4 and misbehaves on request. The script of a job picks the behaviour.
const fakeEnv = "PYEXEC_FAKE_WORKER"

// fakeBinary is a world-executable copy of the test binary: workers drop to
// an unprivileged uid when the tests run as root.
var fakeBinary string

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeEnv); mode != "" {
		fakeWorker(mode)
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "pool-test-")
	if err == nil {
		err = copyExecutable(dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "setting up fake worker:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		// Nothing may outlive the tests: not a worker (each test checks),
		// not a goroutine.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func copyExecutable(dir string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	src, err := os.Open(self)
	if err != nil {
		return err
	}
	defer src.Close()
	fakeBinary = filepath.Join(dir, "fake-worker")
	dst, err := os.OpenFile(fakeBinary, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	return os.Chmod(dir, 0o755)
}

func fakeWorker(mode string) {
	in, out := os.NewFile(3, "in"), os.NewFile(4, "out")
	send := func(v any) {
		b, _ := json.Marshal(v)
		worker.WriteFrame(out, b)
	}
	if _, err := worker.ReadFrame(in, worker.MaxFrame); err != nil {
		os.Exit(1)
	}
	if dir, ok := strings.CutPrefix(mode, "gated:"); ok {
		// Once the test has armed the gate, new workers wait for it to
		// open before saying ready: a slow spawn the test controls.
		if exists(filepath.Join(dir, "armed")) {
			for !exists(filepath.Join(dir, "open")) {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	switch mode {
	case "fatal":
		send(map[string]string{"type": "fatal", "error": "cannot install the seccomp filter"})
		os.Exit(1)
	case "silent":
		time.Sleep(time.Hour)
	}
	send(map[string]string{"type": "ready"})
	for jobs := 0; ; {
		b, err := worker.ReadFrame(in, worker.MaxFrame)
		if err != nil {
			os.Exit(0) // the server went away: so do we
		}
		var ctl struct{ Type string }
		json.Unmarshal(b, &ctl)
		if ctl.Type == "cancel" {
			continue // for a job that has ended
		}
		jobs++
		job, res, stdout := fakeJob()
		if verb, arg, _ := strings.Cut(job.Script, ":"); verb == "dieonce" && !exists(arg) {
			// Dies before acknowledging: the job never reached it.
			os.WriteFile(arg, nil, 0o644)
			os.Exit(3)
		}
		// What a template does: acknowledge, then the job runs.
		send(map[string]string{"type": "started"})
		answerWith := func(r []byte) {
			stdout.Write([]byte("pid " + fmt.Sprint(os.Getpid())))
			stdout.Close()
			worker.WriteFrame(res, append([]byte(job.Nonce), r...))
			res.Close()
			send(map[string]any{"type": "done", "status": "exited", "exit_code": 0})
		}
		answer := func() {
			r, _ := json.Marshal(map[string]string{"result": job.Script})
			answerWith(r)
		}
		switch verb, arg, _ := strings.Cut(job.Script, ":"); verb {
		case "hang":
			time.Sleep(time.Hour)
		case "crash":
			os.Exit(3)
		case "garbage":
			out.Write([]byte("this is not a frame at all"))
			time.Sleep(time.Hour)
		case "huge":
			out.Write([]byte{0x7f, 0xff, 0xff, 0xff})
			time.Sleep(time.Hour)
		case "notready":
			answerWith([]byte(`{"result": 1}`))
			os.Exit(0)
		case "grandchild":
			// A grandchild that holds the pipes and ignores the worker's death.
			cmd := exec.Command("/bin/sleep", "3600")
			cmd.ExtraFiles = []*os.File{in, out}
			cmd.Start()
			time.Sleep(time.Hour)
		case "dieidle": // answers, says ready, then dies while idle
			answer()
			send(map[string]string{"type": "ready"})
			if arg != "now" { // "dieidle:now" dies as soon as it said ready
				time.Sleep(20 * time.Millisecond)
			}
			os.Exit(0)
		case "dieonce": // answers "survived" once arg exists (see above)
			answerWith([]byte(`{"result": "survived"}`))
			send(map[string]string{"type": "ready"})
		case "count": // answers "<arg> <how many jobs this worker has been given>"
			r, _ := json.Marshal(map[string]string{"result": fmt.Sprintf("%s %d", arg, jobs)})
			answerWith(r)
			send(map[string]string{"type": "ready"})
		case "wait": // answers once the file arg exists
			for !exists(arg) {
				time.Sleep(5 * time.Millisecond)
			}
			answer()
			send(map[string]string{"type": "ready"})
		case "dying": // takes arg to kill its job's processes, saying so every 500 ms
			d, _ := time.ParseDuration(arg)
			for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
				send(map[string]string{"type": "dying"})
			}
			answer()
			send(map[string]string{"type": "ready"})
		case "sleep":
			d, _ := time.ParseDuration(arg)
			time.Sleep(d)
			fallthrough
		default:
			answer()
			send(map[string]string{"type": "ready"})
		}
	}
}

// fakeJob receives a job's descriptors on fd 6, as a template does, and
// reads the job from its memfd: the script and the nonce to put before the
// result.
func fakeJob() (job struct{ Script, Nonce string }, res, stdout *os.File) {
	buf, oob := make([]byte, 16), make([]byte, unix.CmsgSpace(4*4))
	_, oobn, _, _, err := unix.Recvmsg(6, buf, oob, 0)
	if err != nil {
		os.Exit(1)
	}
	msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
	if len(msgs) != 1 {
		os.Exit(1)
	}
	fds, _ := unix.ParseUnixRights(&msgs[0])
	if len(fds) != 4 {
		os.Exit(1)
	}
	spec := os.NewFile(uintptr(fds[0]), "job")
	b, _ := io.ReadAll(spec)
	spec.Close()
	json.Unmarshal(b, &job)
	unix.Close(fds[2]) // stderr: the fake writes none
	return job, os.NewFile(uintptr(fds[3]), "result"), os.NewFile(uintptr(fds[1]), "stdout")
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
