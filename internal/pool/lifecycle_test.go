package pool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/python-executor/python-executor/internal/worker"
)

// queued reports how many goroutines are blocked in puddle's semaphore, that
// is, waiting in the pool's queue. Polling it lets a test put requests in
// the queue in a known order.
func queued() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "[select") && strings.Contains(g, "semaphore.(*Weighted).Acquire") {
			n++
		}
	}
	return n
}

// result is what one Run returned, for tests that run jobs in goroutines.
type result struct {
	out worker.Outcome
	err error
}

func goRun(p interface {
	Run(context.Context, worker.Job) (worker.Outcome, error)
}, j worker.Job) <-chan result {
	c := make(chan result, 1)
	go func() {
		out, err := p.Run(context.Background(), j)
		c <- result{out, err}
	}()
	return c
}

func TestUndeliveredJobIsRetriedOnAnotherWorker(t *testing.T) {
	p := newTestPool(t, "ok", Config{Size: 2})
	p.run = notDelivered
	marker := filepath.Join(sharedDir(t), "died")
	out, err := p.Run(context.Background(), job("dieonce:"+marker))
	if err != nil || string(out.Result) != `"survived"` {
		t.Fatalf("Run = %s, %v; want the job run by a second worker", out.Result, err)
	}
	s := p.Stat()
	if diff := cmp.Diff(map[string]int64{"exited": 1}, s.Kills); s.Retries != 1 || diff != "" {
		t.Errorf("retries = %d, kills (-want +got):\n%s", s.Retries, diff)
	}
}

func TestRetriesAreBounded(t *testing.T) {
	p := newTestPool(t, "ok", Config{Size: 1})
	p.run = notDelivered
	_, err := p.Run(context.Background(), job("crash"))
	if !worker.SafeToRetry(err) || !errors.Is(err, worker.ErrExited) {
		t.Fatalf("Run = %v, want the last worker's error", err)
	}
	if got := p.Stat().Retries; got != 2 {
		t.Errorf("retries = %d, want 2 (3 attempts)", got)
	}
	waitFor(t, "the pool to be full again", func() bool { return p.Stat().Idle == 1 })
	if got := p.Stat().Kills["exited"]; got != 3 {
		t.Errorf("workers killed = %d, want 3", got)
	}
}

func TestDeliveredJobIsNotRetried(t *testing.T) {
	p := newTestPool(t, "ok", Config{Size: 2})
	_, err := p.Run(context.Background(), job("crash"))
	if !errors.Is(err, worker.ErrExited) || worker.SafeToRetry(err) {
		t.Fatalf("Run = %v, want ErrExited, not retried", err)
	}
	if got := p.Stat().Retries; got != 0 {
		t.Errorf("retries = %d, want 0: the job may have run", got)
	}
}

func TestIdleWorkerDeathIsNoticedWithoutARequest(t *testing.T) {
	// "dieidle:now" dies right after saying ready, which can be before the
	// pool has made it idle again (the race release covers; this test does
	// not force it).
	for _, script := range []string{"dieidle", "dieidle:now"} {
		t.Run(script, func(t *testing.T) {
			// No periodic check: the worker's own death must trigger it.
			p := newTestPool(t, "ok", Config{Size: 1, HealthCheckPeriod: time.Hour})
			if _, err := p.Run(context.Background(), job(script)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the dead worker to be replaced", func() bool {
				s := p.Stat()
				return s.Kills["died_idle"] == 1 && s.Idle == 1
			})
		})
	}
}

func TestWaitersAreServedInArrivalOrder(t *testing.T) {
	p := newTestPool(t, "ok", Config{Size: 1})
	rel := newRelease(t)
	first := goRun(p, rel.job())
	waitFor(t, "the worker to be busy", func() bool { return p.Stat().Busy == 1 })
	var waiters []<-chan result
	for i := range 4 {
		waiters = append(waiters, goRun(p, job("count:"+strconv.Itoa(i))))
		waitFor(t, "the request to queue", func() bool { return queued() == i+1 })
	}
	rel.do(t)
	if r := <-first; r.err != nil {
		t.Fatal(r.err)
	}
	// The only worker counts the jobs it is given: the first was the one
	// that held it, then the waiters in the order they arrived.
	for i, c := range waiters {
		r := <-c
		want := strconv.Quote(fmt.Sprintf("%d %d", i, i+2))
		if r.err != nil || string(r.out.Result) != want {
			t.Errorf("waiter %d = %s, %v; want %s", i, r.out.Result, r.err, want)
		}
	}
}

// release is a file that a fake worker's "wait:" job waits for.
type release string

func newRelease(t *testing.T) release { return release(filepath.Join(sharedDir(t), "release")) }

// job returns a job that runs until r is done.
func (r release) job() worker.Job {
	return worker.Job{Script: "wait:" + string(r), Timeout: time.Minute}
}
func (r release) do(t *testing.T) {
	if err := os.WriteFile(string(r), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// gate makes new fake workers of a "gated:" pool wait before saying ready,
// until open is called.
type gate string

func newGate(t *testing.T) gate { return gate(sharedDir(t)) }

func (g gate) mode() string { return "gated:" + string(g) }
func (g gate) arm(t *testing.T) {
	if err := os.WriteFile(filepath.Join(string(g), "armed"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}
func (g gate) open(t *testing.T) {
	if err := os.WriteFile(filepath.Join(string(g), "open"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRequestGetsBusyWorkerBeforeSlowReplacement(t *testing.T) {
	g := newGate(t)
	p := newTestPool(t, g.mode(), Config{Size: 2})
	g.arm(t) // replacements now start only when the test says so
	if _, err := p.Run(context.Background(), job("crash")); !errors.Is(err, worker.ErrExited) {
		t.Fatalf("crash = %v", err)
	}
	waitFor(t, "the replacement to be starting", func() bool { return p.Stat().Starting == 1 })
	rel := newRelease(t)
	busy := goRun(p, rel.job())
	waitFor(t, "the other worker to be busy", func() bool { return p.Stat().Busy == 1 })
	next := goRun(p, job("next"))
	waitFor(t, "the request to queue", func() bool { return queued() == 1 })
	rel.do(t)
	if r := <-next; r.err != nil || string(r.out.Result) != `"next"` {
		t.Fatalf("queued job = %s, %v", r.out.Result, r.err)
	}
	if r := <-busy; r.err != nil {
		t.Fatal(r.err)
	}
	if s := p.Stat(); s.Starting != 1 {
		t.Errorf("stat = %+v; the queued job must have run on the worker that freed up, while the replacement was still starting", s)
	}
	g.open(t)
	waitFor(t, "the pool to be full again", func() bool { return p.Stat().Idle == 2 })
}

func TestCloseLetsRunningAndQueuedJobsFinish(t *testing.T) {
	p := newTestPool(t, "ok", Config{Size: 1})
	rel := newRelease(t)
	running := goRun(p, rel.job())
	waitFor(t, "the worker to be busy", func() bool { return p.Stat().Busy == 1 })
	waiting := goRun(p, job("queued"))
	waitFor(t, "the request to queue", func() bool { return queued() == 1 })
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p.Close(ctx)
	}()
	waitFor(t, "Close to stop admitting", func() bool { return p.Stat().Closing })
	if _, err := p.Run(context.Background(), job("late")); !errors.Is(err, ErrClosed) {
		t.Errorf("job sent after Close = %v, want ErrClosed", err)
	}
	rel.do(t)
	for name, c := range map[string]<-chan result{"running": running, "queued": waiting} {
		if r := <-c; r.err != nil {
			t.Errorf("%s job = %v, want it to finish", name, r.err)
		}
	}
	<-closed
	assertNoWorkers(t)
}

func TestCloseKillsRunningJobsAfterGrace(t *testing.T) {
	p := newTestPool(t, "ok", Config{Size: 1})
	running := goRun(p, worker.Job{Script: "hang", Timeout: time.Minute})
	waitFor(t, "the job to start", func() bool { return p.Stat().Busy == 1 })
	waiting := goRun(p, job("queued"))
	waitFor(t, "the request to queue", func() bool { return queued() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	p.Close(ctx)
	for name, c := range map[string]<-chan result{"running": running, "queued": waiting} {
		if r := <-c; !errors.Is(r.err, ErrClosed) {
			t.Errorf("%s job = %v, want ErrClosed", name, r.err)
		}
	}
	assertNoWorkers(t)
}

func TestCloseDoesNotWaitForASpawn(t *testing.T) {
	g := newGate(t)
	cfg := testConfig(t, g.mode(), Config{Size: 1})
	cfg.Worker.StartTimeout = time.Hour // only Close can end the spawn
	p, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	g.arm(t)
	if _, err := p.Run(context.Background(), job("crash")); !errors.Is(err, worker.ErrExited) {
		t.Fatalf("crash = %v", err)
	}
	waitFor(t, "the replacement to be starting", func() bool { return p.Stat().Starting == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	p.Close(ctx) // returns although the replacement would never be ready
	assertNoWorkers(t)
}
