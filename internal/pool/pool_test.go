package pool

import (
	"context"
	"errors"
	"os"
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

func newTestPool(t *testing.T, mode string, cfg Config) *Pool {
	t.Helper()
	t.Setenv(fakeEnv, mode)
	sb, err := sandbox.New(sandbox.Config{Mode: "basic", PassEnv: []string{fakeEnv}, ScratchBytes: 1 << 20})
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
	p, err := New(context.Background(), cfg)
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
	if _, err := p.Run(context.Background(), job("dieidle")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the idle worker to die", func() bool { return len(fakePids()) == 0 })
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
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := p.Run(ctx, worker.Job{Script: "hang", Timeout: time.Minute})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	waitFor(t, "a replacement worker", func() bool { return p.Stat().Idle == 1 && p.Stat().Spawns == 2 })
}

func TestQueueFullAndTimeout(t *testing.T) {
	p := newTestPool(t, "ok", Config{Size: 1, MaxQueue: 1, QueueTimeout: 300 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // occupies the only worker
		defer wg.Done()
		p.Run(ctx, worker.Job{Script: "hang", Timeout: time.Minute})
	}()
	waitFor(t, "the worker to be busy", func() bool { return p.Stat().Busy == 1 })
	wg.Add(1)
	errc := make(chan error, 1)
	go func() { // waits in the queue
		defer wg.Done()
		_, err := p.Run(context.Background(), job("queued"))
		errc <- err
	}()
	waitFor(t, "a queued request", func() bool { return p.Stat().Waiting == 1 })
	if ok, _ := p.Stat().Ready(); ok {
		t.Error("Ready() = true while saturated")
	}
	if _, err := p.Run(context.Background(), job("third")); !errors.Is(err, ErrQueueFull) {
		t.Errorf("third Run = %v, want ErrQueueFull", err)
	}
	if err := <-errc; !errors.Is(err, ErrQueueTimeout) {
		t.Errorf("queued Run = %v, want ErrQueueTimeout", err)
	}
	cancel()
	wg.Wait()
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
	sb, err := sandbox.New(sandbox.Config{Mode: "basic", PassEnv: []string{fakeEnv}})
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

func TestCloseKillsRunningJobsAfterGrace(t *testing.T) {
	p := newTestPool(t, "ok", Config{Size: 2})
	errc := make(chan error, 1)
	go func() {
		_, err := p.Run(context.Background(), worker.Job{Script: "hang", Timeout: time.Minute})
		errc <- err
	}()
	waitFor(t, "the job to start", func() bool { return p.Stat().Busy == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	p.Close(ctx)
	if err := <-errc; err == nil {
		t.Error("hung job returned no error after Close")
	}
	assertNoWorkers(t)
}

func TestColdMode(t *testing.T) {
	p := newTestPool(t, "ok", Config{Size: 0, ColdConcurrency: 2})
	for i := range 3 {
		out, err := p.Run(context.Background(), job("cold"))
		if err != nil || string(out.Result) != `"cold"` {
			t.Fatalf("cold job %d = %s, %v", i, out.Result, err)
		}
	}
	if got := p.Stat().Spawns; got != 4 { // one probe at New, one per job
		t.Errorf("spawns = %d, want 4", got)
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
	}
	for _, tt := range tests {
		if got, why := tt.stat.Ready(); got != tt.want {
			t.Errorf("%+v.Ready() = %v (%s), want %v", tt.stat, got, why, tt.want)
		}
	}
}
