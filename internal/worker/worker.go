package worker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/python-executor/python-executor/internal/sandbox"
)

// Limits bound what one job may use. Every limit names itself in the error a
// job gets when it hits it.
type Limits struct {
	MemoryBytes int64 // address space a job may add to the warm interpreter
	StdoutBytes int64 // stdout kept; the rest is counted and dropped
	ResultBytes int64 // serialized result
	FileBytes   int64 // largest file a job may write (RLIMIT_FSIZE)
	Procs       int   // processes and threads of the job (RLIMIT_NPROC)
	OpenFiles   int   // RLIMIT_NOFILE
	// UnnamedDiskBytes, at basic level, is how much the scratch
	// filesystem may shrink while a job runs beyond the files the job's
	// directory holds: files without a name (deleted while open,
	// O_TMPFILE) are in no directory, and other jobs' and the host's
	// writes in that time count too. 0: not checked.
	UnnamedDiskBytes int64
	// FileTableGrowth is how far the host's count of open files
	// (/proc/sys/fs/file-nr) may grow while a job runs: a file a job maps
	// stays open once its descriptor is closed, past RLIMIT_NOFILE, and
	// the table (fs.file-max) is the whole host's. Other jobs' and the
	// host's files count too. 0: not checked.
	FileTableGrowth int64
	// ScratchEntries is how many files and directories a job may make in
	// its scratch space (and, at namespaces level, the sandbox's tmpfs
	// mounts): each costs kernel memory that no process's size shows.
	// 0: the template's default, 100,000.
	ScratchEntries int
	// OutputFiles and OutputFilesBytes bound what a V1 job returns: files
	// it wrote and images of its figures, each at most OutputFiles, and
	// at most OutputFilesBytes of both together.
	OutputFiles      int
	OutputFilesBytes int64
}

// Config describes how to start a worker.
type Config struct {
	Python  string // absolute path of the interpreter
	Program []byte // source of worker.py
	// Warm pre-imports the Preload modules in the template and warms each
	// job child. Cold workers (Warm false) import nothing ahead of the script.
	Warm bool
	// Preload names the modules a warm template imports before forking
	// (matplotlib: pyplot with the Agg backend). nil means DefaultPreload;
	// an empty, non-nil slice preloads nothing.
	Preload []string
	// OneShot workers exit after their first job instead of preparing the
	// next one (cold mode).
	OneShot bool
	Sandbox *sandbox.Sandbox
	Limits  Limits
	// StartTimeout bounds Start and WaitReady.
	StartTimeout time.Duration
	Logger       zerolog.Logger

	probe bool // set by Probe
}

// Worker is one running template interpreter.
type Worker struct {
	cfg     Config
	proc    *sandbox.Process
	in      *os.File // frames to the worker (its fd 3)
	out     *os.File // frames from the worker (its fd 4)
	jobs    *os.File // descriptors of each job to the worker (its fd 6)
	writeMu sync.Mutex
	frames  chan frame    // what readFrames read from out, in order
	killed  chan struct{} // closed by Kill
	// pendingDone: the last Run answered before the template's "done"
	// frame, which WaitReady or the next Run skips. Owned by the caller of
	// Run and WaitReady, which are never concurrent.
	pendingDone bool
	stderr      *tail
	created     time.Time
	jobsRun     atomic.Int64
	died        chan struct{} // closed as soon as Wait returns
	exited      chan struct{} // closed once the exit is recorded and cleaned up
	exitErr     error         // set before exited is closed
	python      *PythonInfo   // from the first "ready" frame, when it has one
	noZygote    string        // from the first "ready" frame: why the template forks the jobs
	kill        sync.Once
	log         zerolog.Logger
}

// grace is how long past a job's own timeout the worker has to answer before
// it is considered hung.
const grace = 3 * time.Second

// Start launches a worker and waits until it has a warm job child ready.
// A worker that cannot be brought up is torn down before Start returns.
func Start(ctx context.Context, cfg Config) (_ *Worker, retErr error) {
	program, err := sealedFile("worker.py", cfg.Program)
	if err != nil {
		return nil, &StartError{Err: err}
	}
	defer program.Close()
	proc, err := cfg.Sandbox.Command(cfg.Python)
	if err != nil {
		return nil, &StartError{Err: err}
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		proc.Cleanup()
		return nil, &StartError{Err: err}
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		proc.Cleanup()
		inR.Close()
		inW.Close()
		return nil, &StartError{Err: err}
	}
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		proc.Cleanup()
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return nil, &StartError{Err: fmt.Errorf("socketpair: %w", err)}
	}
	unix.SetNonblock(sp[1], false) // the worker's end blocks
	jobsMine, jobsTheirs := os.NewFile(uintptr(sp[0]), "jobs"), os.NewFile(uintptr(sp[1]), "jobs-worker")
	w := &Worker{
		cfg:     cfg,
		proc:    proc,
		in:      inW,
		out:     outR,
		jobs:    jobsMine,
		frames:  make(chan frame, 8),
		killed:  make(chan struct{}),
		stderr:  &tail{max: 4096},
		created: time.Now(),
		died:    make(chan struct{}),
		exited:  make(chan struct{}),
	}
	cmd := proc.Cmd
	cmd.Stdin = nil
	cmd.Stdout = nil
	cmd.Stderr = w.stderr
	cmd.ExtraFiles = []*os.File{inR, outW, program, jobsTheirs} // fds 3, 4, sandbox.ProgramFD (5) and 6
	cmd.WaitDelay = time.Second

	// Pdeathsig fires when the creating OS thread exits: keep this goroutine
	// on its thread while forking so the signal is tied to a live thread.
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	inR.Close()
	outW.Close()
	jobsTheirs.Close()
	if err != nil {
		proc.Cleanup()
		inW.Close()
		outR.Close()
		jobsMine.Close()
		return nil, &StartError{Err: err}
	}
	w.log = cfg.Logger.With().Int("pid", cmd.Process.Pid).Logger()
	go w.wait()
	go w.readFrames()
	defer func() {
		if retErr != nil {
			w.Kill()
		}
	}()

	filter, err := cfg.Sandbox.JobFilter(cmd.Process.Pid)
	if err != nil {
		return nil, &StartError{Err: err}
	}
	signals, err := sandbox.SignalSyscalls()
	if err != nil {
		return nil, &StartError{Err: err}
	}
	abi, rules := cfg.Sandbox.Landlock()
	conf, err := json.Marshal(map[string]any{
		"seccomp":            base64.StdEncoding.EncodeToString(filter),
		"signal_syscalls":    signals,
		"landlock_abi":       abi,
		"watch_memory":       !proc.MemoryCgroup,
		"watch_disk":         cfg.Sandbox.Level() == sandbox.LevelBasic,
		"watch_inodes":       cfg.Sandbox.TmpfsMounts(),
		"max_entries":        cfg.Limits.ScratchEntries,
		"own_uid":            cfg.Sandbox.PerWorkerUIDs(),
		"landlock":           rules,
		"warm":               cfg.Warm,
		"preload":            cfg.preload(),
		"probe":              cfg.probe,
		"one_shot":           cfg.OneShot,
		"scratch":            proc.Scratch,
		"memory_bytes":       cfg.Limits.MemoryBytes,
		"stdout_limit":       cfg.Limits.StdoutBytes,
		"result_limit":       cfg.Limits.ResultBytes,
		"fsize_bytes":        cfg.Limits.FileBytes,
		"unnamed_disk_bytes": cfg.Limits.UnnamedDiskBytes,
		"file_table_growth":  cfg.Limits.FileTableGrowth,
		"nproc":              cfg.Limits.Procs,
		"nofile":             cfg.Limits.OpenFiles,
		"kill_timeout_s":     int(killTimeout / time.Second),
	})
	if err != nil {
		return nil, &StartError{Err: err}
	}
	w.in.SetWriteDeadline(time.Now().Add(cfg.StartTimeout))
	if err := WriteFrame(w.in, conf); err != nil {
		return nil, w.startError(fmt.Errorf("sending config: %w", err))
	}
	if err := w.WaitReady(ctx); err != nil {
		if errors.Is(err, ErrUnresponsive) || errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: not ready within %s", ErrUnresponsive, cfg.StartTimeout)
		}
		return nil, w.startError(err)
	}
	return w, nil
}

func (w *Worker) startError(err error) error {
	// Give the process a moment to finish writing stderr before reading it.
	select {
	case <-w.exited:
	case <-time.After(100 * time.Millisecond):
	}
	return &StartError{Err: err, Stderr: w.stderr.String()}
}

// Pid returns the process id of the worker (the sandbox launcher at
// LevelNamespaces).
func (w *Worker) Pid() int { return w.proc.Cmd.Process.Pid }

// NoZygote returns why a warm worker's template forks the job processes
// itself, or "" when its zygote does (or the worker is not warm). Without a
// zygote, names a job saw in the template's memory can reach later jobs
// (SECURITY.md, "Known gaps").
func (w *Worker) NoZygote() string { return w.noZygote }

// Created returns when the worker was started.
func (w *Worker) Created() time.Time { return w.created }

// Jobs returns how many jobs the worker has run.
func (w *Worker) Jobs() int64 { return w.jobsRun.Load() }

// Exited is closed once the worker process has exited and its sandbox has
// been cleaned up.
func (w *Worker) Exited() <-chan struct{} { return w.exited }

// Died is closed as soon as the worker process has been reaped, before any
// clean-up: the earliest moment a channel can tell. Alive sees earlier still.
func (w *Worker) Died() <-chan struct{} { return w.died }

// Alive reports whether the worker's process is still running. Unlike Died
// it sees a process that has exited but not yet been reaped (a zombie), by
// asking the kernel without reaping it.
func (w *Worker) Alive() bool {
	select {
	case <-w.died:
		return false
	default:
	}
	var info unix.Siginfo
	err := unix.Waitid(unix.P_PID, w.proc.Cmd.Process.Pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	if err != nil {
		return !errors.Is(err, unix.ECHILD) // ECHILD: reaped already
	}
	return info.Signo == 0 // siginfo stays zero while the child runs
}

// WaitReady blocks until the worker announces a waiting job child, ctx ends
// or StartTimeout passes. Any error leaves the worker unusable: Kill it.
func (w *Worker) WaitReady(ctx context.Context) error {
	err := w.awaitFrame(ctx, "ready", w.cfg.StartTimeout)
	if errors.Is(err, ErrUnresponsive) {
		return fmt.Errorf("%w: not ready within %s", ErrUnresponsive, w.cfg.StartTimeout)
	}
	return err
}

// frame is one control frame from the template, or the error that ended
// the stream.
type frame struct {
	m   *meta
	err error
}

// readFrames owns reads from the template's control pipe for the worker's
// whole life. It ends at EOF (the template exited, or Kill closed the pipe)
// or on a protocol error, which it sends last.
func (w *Worker) readFrames() {
	defer close(w.frames)
	for {
		b, err := ReadFrame(w.out, 64<<10)
		if err != nil {
			if errors.Is(err, ErrFrameTooLarge) {
				err = fmt.Errorf("%w: %v", ErrProtocol, err)
			} else {
				err = w.deadErr(err)
			}
			w.deliverFrame(frame{err: err})
			return
		}
		var m meta
		if err := json.Unmarshal(b, &m); err != nil {
			w.deliverFrame(frame{err: fmt.Errorf("%w: %v", ErrProtocol, err)})
			return
		}
		if !w.deliverFrame(frame{m: &m}) {
			return
		}
	}
}

// deliverFrame queues f unless the worker has been killed.
func (w *Worker) deliverFrame(f frame) bool {
	select {
	case w.frames <- f:
		return true
	case <-w.killed:
		return false
	}
}

// frameErr is the error for a frame stream that ended (ok false) or failed.
func (w *Worker) frameErr(f frame, ok bool) error {
	if ok {
		return f.err
	}
	return w.deadErr(io.EOF)
}

// deadErr turns an I/O error on the pipes into ErrExited when the process is
// gone (or going).
func (w *Worker) deadErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.EPIPE) {
		select {
		case <-w.exited:
			return fmt.Errorf("%w: %v", ErrExited, w.exitErr)
		case <-time.After(time.Second):
		}
		return ErrExited
	}
	return err
}

// Close lets a worker that has finished its work exit on its own (a OneShot
// worker after its job; any worker once its control pipe closes), waiting up
// to a second, then kills it. Exiting on its own lets every process of the
// sandbox be reaped, so their CPU time is accounted to the server.
func (w *Worker) Close() {
	w.in.Close()
	select {
	case <-w.exited:
	case <-time.After(time.Second):
	}
	w.Kill()
}

// Kill SIGKILLs the worker's whole process group (and with it, at
// LevelNamespaces, its pid namespace) and every process in its cgroup, waits
// up to 5s for it to exit and releases its resources. It is idempotent and safe from any goroutine.
func (w *Worker) Kill() {
	w.kill.Do(func() {
		close(w.killed)
		pid := w.proc.Cmd.Process.Pid
		if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			w.log.Warn().Err(err).Msg("killing worker process group")
		}
		// Job processes run in sessions of their own: at LevelBasic only
		// the worker's cgroup, where there is one, still holds them all.
		w.proc.KillAll()
		select {
		case <-w.exited:
		case <-time.After(5 * time.Second):
			w.log.Error().Msg("worker did not exit 5s after SIGKILL")
		}
		w.in.Close()
		w.out.Close()
		w.jobs.Close()
	})
}

// wait owns cmd.Wait: it records how the process ended, logs it once and
// closes exited.
func (w *Worker) wait() {
	err := w.proc.Cmd.Wait()
	close(w.died)
	w.proc.Cleanup()
	ev := w.log.Info().Int64("jobs_run", w.jobsRun.Load()).Dur("age", time.Since(w.created))
	state := w.proc.Cmd.ProcessState
	if state == nil {
		w.exitErr = err
	} else if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		w.exitErr = &ExitError{Code: -1, Signal: ws.Signal().String()}
		ev = ev.Str("signal", ws.Signal().String())
	} else {
		w.exitErr = &ExitError{Code: state.ExitCode()}
		ev = ev.Int("exit_code", state.ExitCode())
	}
	ev.Msg("worker exited")
	close(w.exited)
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
