package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/python-executor/python-executor/internal/worker"
)

// runner is what Pool and Cold share: admission and draining, spawning and
// tracking workers, and the counters behind Stat.
type runner struct {
	cfg Config
	log zerolog.Logger

	// ctx ends when Close stops waiting for jobs: spawns, waits for a
	// worker and waits for a ready frame end with it.
	ctx    context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup // goroutines that replace, recycle and check workers
	watch  sync.WaitGroup // one goroutine per live worker, waiting for it to die

	mu      sync.Mutex
	closing bool          // guarded by mu: no new job is admitted
	running int           // guarded by mu: admitted jobs whose Run has not returned
	drained chan struct{} // closed once closing and running == 0

	killing atomic.Bool  // Close is killing workers: failed jobs get ErrClosed
	waiting atomic.Int64 // jobs waiting for a worker
	workers sync.Map     // *worker.Worker -> struct{}: live workers, for Close

	spawns, spawnFailures, retries atomic.Int64
	spawnFailing                   atomic.Bool // the latest spawn failed
	warnedNoZygote                 atomic.Bool // the missing zygote was logged
	kills                          sync.Map    // reason -> *atomic.Int64

	// run runs a job on a worker: (*worker.Worker).Run, replaced in tests.
	run func(*worker.Worker, context.Context, worker.Job) (worker.Outcome, error)
}

func newRunner(cfg Config) *runner {
	ctx, cancel := context.WithCancel(context.Background())
	return &runner{cfg: cfg, log: cfg.Logger, ctx: ctx, cancel: cancel,
		drained: make(chan struct{}), run: (*worker.Worker).Run}
}

// admit lets a job in, counting it as running and waiting for a worker, or
// refuses it with ErrClosed or ErrQueueFull. An admitted job must call leave.
func (r *runner) admit() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closing:
		return ErrClosed
	case r.waiting.Load() >= int64(r.cfg.MaxQueue):
		return ErrQueueFull
	}
	r.waiting.Add(1)
	r.running++
	return nil
}

func (r *runner) leave() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running--
	if r.closing && r.running == 0 {
		close(r.drained)
	}
}

// stopAdmitting makes admit refuse every job from now on and returns a
// channel closed once every admitted job has returned.
func (r *runner) stopAdmitting() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closing {
		r.closing = true
		if r.running == 0 {
			close(r.drained)
		}
	}
	return r.drained
}

func (r *runner) isClosing() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closing
}

// spawn starts a worker within StartTimeout, or until ctx or the runner's
// context ends. onDeath, if not nil, is called when the worker's process has
// exited, whatever the cause.
func (r *runner) spawn(ctx context.Context, warm bool, onDeath func()) (*worker.Worker, error) {
	cfg := r.cfg.Worker
	cfg.Warm, cfg.OneShot = warm, !warm
	sctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	stop := context.AfterFunc(r.ctx, cancel)
	defer stop()
	start := time.Now()
	w, err := worker.Start(sctx, cfg)
	if err != nil {
		switch {
		case r.ctx.Err() != nil:
			return nil, fmt.Errorf("%w: %w", ErrClosed, err)
		case ctx.Err() != nil: // the caller gave up: not the worker's fault
			return nil, fmt.Errorf("starting worker: %w", ctx.Err())
		}
		r.spawnFailures.Add(1)
		r.spawnFailing.Store(true)
		// The detail (the worker's stderr, bubblewrap's message) is for the
		// log only; Stat says no more than that spawns fail.
		r.log.Error().Err(err).Msg("worker failed to start")
		return nil, err
	}
	r.spawns.Add(1)
	r.spawnFailing.Store(false)
	r.workers.Store(w, struct{}{})
	r.watch.Add(1)
	go func() {
		defer r.watch.Done()
		<-w.Died()
		r.workers.Delete(w)
		if onDeath != nil {
			onDeath()
		}
	}()
	r.log.Debug().Int("pid", w.Pid()).Dur("took", time.Since(start)).Bool("warm", warm).Msg("worker started")
	if why := w.NoZygote(); why != "" && !r.warnedNoZygote.Swap(true) {
		r.log.Warn().Str("reason", why).
			Msg("no zygote: templates fork the job processes themselves (SECURITY.md, known gaps)")
	}
	return w, nil
}

// killAll kills every live worker at once and waits until they have exited.
func (r *runner) killAll() {
	var wg sync.WaitGroup
	r.workers.Range(func(k, _ any) bool {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k.(*worker.Worker).Kill()
		}()
		return true
	})
	wg.Wait()
}

// jobErr is the error Run returns for a job that failed with err.
func (r *runner) jobErr(err error) error {
	if r.killing.Load() && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

func (r *runner) countKill(why string) {
	c, _ := r.kills.LoadOrStore(why, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
}

func (r *runner) observeWait(start time.Time) {
	if r.cfg.QueueWait != nil {
		r.cfg.QueueWait(time.Since(start))
	}
}

// annotate adds the worker that ran the job, and how many workers were
// tried, to the request's logger (zerolog.Ctx), so the access log line names
// them.
func annotate(ctx context.Context, w *worker.Worker, attempts int) {
	if w == nil {
		return
	}
	zerolog.Ctx(ctx).UpdateContext(func(c zerolog.Context) zerolog.Context {
		c = c.Int("worker_pid", w.Pid())
		if attempts > 1 {
			c = c.Int("attempts", attempts)
		}
		return c
	})
}

// stat fills in what Pool and Cold count alike.
func (r *runner) stat() Stat {
	s := Stat{Waiting: int(max(r.waiting.Load(), 0)), MaxQueue: r.cfg.MaxQueue,
		Spawns: r.spawns.Load(), SpawnFailures: r.spawnFailures.Load(), SpawnFailing: r.spawnFailing.Load(),
		Retries: r.retries.Load(), Kills: map[string]int64{}, Closing: r.isClosing()}
	r.kills.Range(func(k, v any) bool {
		s.Kills[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return s
}

// reason names why a worker whose job failed with err is destroyed.
func reason(err error) string {
	switch {
	case errors.Is(err, ErrClosed):
		return "shutdown"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "cancelled"
	case errors.Is(err, worker.ErrUnresponsive):
		return "unresponsive"
	case errors.Is(err, worker.ErrExited):
		return "exited"
	case errors.Is(err, worker.ErrProtocol):
		return "protocol"
	case errors.Is(err, worker.ErrNotDelivered):
		return "not_delivered"
	}
	return "error"
}
