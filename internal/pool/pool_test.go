package pool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/python-executor/python-executor/internal/sandbox"
	"github.com/python-executor/python-executor/internal/worker"
)

func testConfig(t *testing.T, mode string, cfg Config) Config {
	t.Helper()
	t.Setenv(fakeEnv, mode)
	// Fake workers run no job: the pool is under test here, not the sandbox.
	sb, err := sandbox.New(sandbox.Config{Mode: "basic", PassEnv: []string{fakeEnv}, ScratchBytes: 1 << 20, InsecureSharedUID: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Worker = worker.Config{
		Python:       fakeBinary,
		Program:      []byte("fake"),
		Sandbox:      sb,
		Limits:       worker.Limits{StdoutBytes: 1 << 16, ResultBytes: 1 << 16},
		StartTimeout: 5 * time.Second,
	}
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t))
	return cfg
}

func newTestPool(t *testing.T, mode string, cfg Config) *Pool {
	t.Helper()
	p, err := New(context.Background(), testConfig(t, mode, cfg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Close(ctx)
		assertNoWorkers(t)
	})
	return p
}

func newTestCold(t *testing.T, mode string, cfg Config) *Cold {
	t.Helper()
	c, err := NewCold(context.Background(), testConfig(t, mode, cfg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Close(ctx)
		assertNoWorkers(t)
	})
	return c
}

// sharedDir returns a directory that the fake workers (an unprivileged uid
// when the tests run as root) can read and write.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pool-test-shared-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// notDelivered plays worker.Run under the contract that every error before
// the template acknowledged the job wraps worker.ErrNotDelivered: the fake
// workers of these tests fail only before answering anything.
func notDelivered(w *worker.Worker, ctx context.Context, job worker.Job) (worker.Outcome, error) {
	out, err := w.Run(ctx, job)
	if err != nil {
		err = fmt.Errorf("%w: %w", worker.ErrNotDelivered, err)
	}
	return out, err
}

// assertNoWorkers fails if any fake worker process is still alive.
func assertNoWorkers(t *testing.T) {
	t.Helper()
	waitFor(t, "every worker to exit", func() bool { return len(fakePids()) == 0 })
}

func fakePids() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, _ := os.Readlink("/proc/" + e.Name() + "/exe")
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if strings.HasPrefix(exe, fakeBinary) || strings.Contains(string(cmdline), "sleep\x003600") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// exited reports whether pid has exited, reaped or not: a zombie has exited
// too, and is what a process that just died looks like until its parent's
// Wait reaps it.
func exited(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses and may
	// itself contain ") ".
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X'
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func job(script string) worker.Job {
	return worker.Job{Script: script, Timeout: 200 * time.Millisecond}
}

func TestRunReusesCleanWorker(t *testing.T) {
	p := newTestPool(t, "ok", Config{Size: 1})
	first, err := p.Run(context.Background(), job("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(`"hello"`, string(first.Result)); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	waitFor(t, "the worker to be idle again", func() bool { return p.Stat().Idle == 1 })
	second, err := p.Run(context.Background(), job("again"))
	if err != nil {
		t.Fatal(err)
	}
	if first.Stdout != second.Stdout {
		t.Errorf("second job ran on %q, want the same worker as the first (%q)", second.Stdout, first.Stdout)
	}
	if got := p.Stat().Spawns; got != 1 {
		t.Errorf("spawns = %d, want 1", got)
	}
}

func TestBrokenWorkersAreReplaced(t *testing.T) {
	tests := []struct {
		script string
		want   error
	}{
		{"crash", worker.ErrExited},
		{"garbage", worker.ErrProtocol},
		{"huge", worker.ErrProtocol},
		{"hang", worker.ErrUnresponsive},
		{"grandchild", worker.ErrUnresponsive},
	}
	for _, tt := range tests {
		t.Run(tt.script, func(t *testing.T) {
			p := newTestPool(t, "ok", Config{Size: 1})
			_, err := p.Run(context.Background(), job(tt.script))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Run(%q) = %v, want %v", tt.script, err, tt.want)
			}
			waitFor(t, "a replacement worker", func() bool { return p.Stat().Idle == 1 })
			out, err := p.Run(context.Background(), job("after"))
			if err != nil || string(out.Result) != `"after"` {
				t.Fatalf("job after replacement = %q, %v", out.Result, err)
			}
			if s := p.Stat(); s.Spawns != 2 || len(s.Kills) != 1 {
				t.Errorf("stat = %+v, want 2 spawns and one kill", s)
			}
		})
	}
}

// A template that takes longer than the backstop to kill a job's processes,
// saying so as it goes, keeps its worker.
func TestSlowKillKeepsTheWorker(t *testing.T) {
	p := newTestPool(t, "ok", Config{Size: 1})
	out, err := p.Run(context.Background(), job("dying:4s"))
	if err != nil || string(out.Result) != `"dying:4s"` {
		t.Fatalf("Run = %q, %v", out.Result, err)
	}
	out, err = p.Run(context.Background(), job("after"))
	if err != nil || string(out.Result) != `"after"` {
		t.Fatalf("job after = %q, %v", out.Result, err)
	}
	if s := p.Stat(); s.Spawns != 1 || len(s.Kills) != 0 {
		t.Errorf("stat = %+v, want the one worker, never killed", s)
	}
}

func TestNotReadyAfterJobIsReplaced(t *testing.T) {
	p := newTestPool(t, "ok", Config{Size: 1})
	out, err := p.Run(context.Background(), job("notready"))
	if err != nil || string(out.Result) != "1" {
		t.Fatalf("Run = %q, %v; the job itself completed", out.Result, err)
	}
	waitFor(t, "a replacement worker", func() bool { return p.Stat().Spawns == 2 && p.Stat().Idle == 1 })
}

func TestWorkerThatDiedIdleIsNotHandedOut(t *testing.T) {
	p := newTestPool(t, "ok", Config{Size: 1})
	first, err := p.Run(context.Background(), job("dieidle"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimPrefix(first.Stdout, "pid "))
	waitFor(t, "the idle worker to die", func() bool { return exited(pid) })
	out, err := p.Run(context.Background(), job("after"))
	if err != nil || string(out.Result) != `"after"` {
		t.Fatalf("job after an idle worker died = %s, %v; want it run on a new worker", out.Result, err)
	}
	if got := p.Stat().Kills["died_idle"]; got != 1 {
		t.Errorf("died_idle kills = %d, want 1", got)
	}
}

func TestCancelKillsJob(t *testing.T) {
	p := newTestPool(t, "ok", Config{Size: 1})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := p.Run(ctx, worker.Job{Script: "hang", Timeout: time.Minute})
		errc <- err
	}()
	waitFor(t, "the job to start", func() bool { return p.Stat().Busy == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	waitFor(t, "a replacement worker", func() bool { return p.Stat().Idle == 1 && p.Stat().Spawns == 2 })
	if got := p.Stat().Kills["cancelled"]; got != 1 {
		t.Errorf("cancelled kills = %d, want 1", got)
	}
}

// occupy runs a job that holds the pool's only worker until the test ends.
func occupy(t *testing.T, p *Pool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx, worker.Job{Script: "hang", Timeout: time.Minute})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	waitFor(t, "the worker to be busy", func() bool { return p.Stat().Busy == 1 })
}

func TestQueueFull(t *testing.T) {
	p := newTestPool(t, "ok", Config{Size: 1, MaxQueue: 1, QueueTimeout: time.Hour})
	occupy(t, p)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { // waits in the queue
		_, err := p.Run(ctx, job("queued"))
		errc <- err
	}()
	waitFor(t, "a queued request", func() bool { return queued() == 1 })
	if ok, _ := p.Stat().Ready(); ok {
		t.Error("Ready() = true while saturated")
	}
	if _, err := p.Run(context.Background(), job("third")); !errors.Is(err, ErrQueueFull) {
		t.Errorf("third Run = %v, want ErrQueueFull", err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("queued Run = %v, want context.Canceled", err)
	}
}

func TestQueueTimeout(t *testing.T) {
	p := newTestPool(t, "ok", Config{Size: 1, QueueTimeout: 100 * time.Millisecond})
	occupy(t, p)
	if _, err := p.Run(context.Background(), job("queued")); !errors.Is(err, ErrQueueTimeout) {
		t.Errorf("queued Run = %v, want ErrQueueTimeout", err)
	}
}

func TestConcurrentJobsAllComplete(t *testing.T) {
	p := newTestPool(t, "ok", Config{Size: 3, MaxQueue: 100})
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := "sleep:5ms#" + strconv.Itoa(i)
			out, err := p.Run(context.Background(), job(want))
			if err != nil || string(out.Result) != strconv.Quote(want) {
				t.Errorf("job %d = %s, %v", i, out.Result, err)
			}
		}()
	}
	wg.Wait()
	if s := p.Stat(); s.Spawns != 3 {
		t.Errorf("spawns = %d, want 3 (no worker replaced)", s.Spawns)
	}
}

// newFailingPool runs New with fake workers in mode, which must not start.
func newFailingPool(t *testing.T, mode string, size int, startTimeout time.Duration) error {
	t.Helper()
	t.Setenv(fakeEnv, mode)
	sb, err := sandbox.New(sandbox.Config{Mode: "basic", PassEnv: []string{fakeEnv}, InsecureSharedUID: true})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(context.Background(), Config{Size: size, Worker: worker.Config{
		Python: fakeBinary, Program: []byte("fake"), Sandbox: sb, StartTimeout: startTimeout,
	}})
	if err == nil {
		p.Close(context.Background())
	}
	return err
}

func TestStartFailureFailsNew(t *testing.T) {
	err := newFailingPool(t, "fatal", 2, 5*time.Second)
	var se *worker.StartError
	if !errors.As(err, &se) || !strings.Contains(se.Error(), "seccomp") {
		t.Fatalf("New = %v, want a StartError naming the cause", err)
	}
	assertNoWorkers(t)
}

func TestStartTimeout(t *testing.T) {
	err := newFailingPool(t, "silent", 1, 200*time.Millisecond)
	if !errors.Is(err, worker.ErrUnresponsive) || !strings.Contains(err.Error(), "not ready within 200ms") {
		t.Fatalf("New = %v, want a start timeout", err)
	}
	assertNoWorkers(t)
}

func TestColdMode(t *testing.T) {
	c := newTestCold(t, "ok", Config{ColdConcurrency: 2})
	for i := range 3 {
		out, err := c.Run(context.Background(), job("cold"))
		if err != nil || string(out.Result) != `"cold"` {
			t.Fatalf("cold job %d = %s, %v", i, out.Result, err)
		}
	}
	if got := c.Stat().Spawns; got != 4 { // one probe at NewCold, one per job
		t.Errorf("spawns = %d, want 4", got)
	}
}

func TestColdModeRetriesUndeliveredJob(t *testing.T) {
	c := newTestCold(t, "ok", Config{ColdConcurrency: 1})
	c.run = notDelivered
	marker := filepath.Join(sharedDir(t), "died")
	out, err := c.Run(context.Background(), job("dieonce:"+marker))
	if err != nil || string(out.Result) != `"survived"` {
		t.Fatalf("Run = %s, %v; want the job run by a second worker", out.Result, err)
	}
	if got := c.Stat().Retries; got != 1 {
		t.Errorf("retries = %d, want 1", got)
	}
}

func TestColdCloseRefusesNewJobs(t *testing.T) {
	c := newTestCold(t, "ok", Config{ColdConcurrency: 1})
	c.Close(context.Background())
	if _, err := c.Run(context.Background(), job("late")); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close = %v, want ErrClosed", err)
	}
}

func TestReady(t *testing.T) {
	tests := []struct {
		stat Stat
		want bool
	}{
		{Stat{Size: 2, Idle: 2, MaxQueue: 64}, true},
		{Stat{Size: 2, Busy: 2, Waiting: 5, MaxQueue: 64}, true}, // busy, not saturated
		{Stat{Size: 2, Busy: 2, Waiting: 32, MaxQueue: 64}, false},
		{Stat{Size: 2, Idle: 1, Busy: 1, Waiting: 40, MaxQueue: 64}, true},
		{Stat{Size: 2, Starting: 2, MaxQueue: 64}, false}, // not warm yet
		{Stat{Size: 0, Busy: 2, MaxQueue: 64}, true},      // cold mode
		{Stat{Size: 1, Busy: 1, Waiting: 1, MaxQueue: 1}, false},
		{Stat{Size: 2, Idle: 2, MaxQueue: 64, Closing: true}, false},
		{Stat{Size: 2, Starting: 2, MaxQueue: 64, SpawnFailing: true}, false},
	}
	for _, tt := range tests {
		if got, why := tt.stat.Ready(); got != tt.want {
			t.Errorf("%+v.Ready() = %v (%s), want %v", tt.stat, got, why, tt.want)
		}
	}
	// The reason is the same whatever the workers' stderr said: the detail
	// is for the log, not for whoever asks /ready.
	_, why := Stat{Size: 2, SpawnFailing: true}.Ready()
	if diff := cmp.Diff("no warm workers: workers fail to start, see the server log", why); diff != "" {
		t.Errorf("reason (-want +got):\n%s", diff)
	}
}

func TestExiting(t *testing.T) {
	tests := []struct {
		status string
		want   bool
	}{
		{"Name:\tpython3\nState:\tS (sleeping)\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n", false},
		{"Name:\tpython3\nState:\tZ (zombie)\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n", true},
		{"Name:\tpython3\nState:\tR (running)\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000100\n", true},   // SIGKILL on its way
		{"Name:\tpython3\nState:\tS (sleeping)\nSigPnd:\t0000000000004000\nShdPnd:\t0000000000000000\n", false}, // SIGTERM is not fatal
	}
	for _, tt := range tests {
		if got := exiting([]byte(tt.status)); got != tt.want {
			t.Errorf("exiting(%q) = %v, want %v", tt.status, got, tt.want)
		}
	}
}
