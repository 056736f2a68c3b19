package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/puddle/v2"

	"github.com/python-executor/python-executor/internal/worker"
)

// Pool runs jobs on Size warm workers.
type Pool struct {
	*runner
	p         *puddle.Pool[*slot]
	replacing atomic.Int32 // slots whose worker is being replaced
	// checking is held by the health check while it holds the idle workers
	// and by Stat, so that Stat never counts them as busy.
	checking  sync.Mutex
	wake      chan struct{} // asks the health loop to check idle workers now
	closed    chan struct{} // closed when Close has returned
	closeOnce atomic.Bool
}

// slot is the pool's puddle resource: one of its Size places. It holds one
// worker at a time. A broken worker is replaced inside its slot while the
// slot stays acquired, so puddle's resource count never drops below Size and
// a request never constructs a worker: it gets whichever comes first, a busy
// worker that finishes or a replacement that is ready.
type slot struct {
	w *worker.Worker // read and written only by the holder of the acquired resource
}

// New starts a pool of cfg.Size workers and waits until every one is warm.
// It fails if any of them cannot start (a sandbox that cannot be applied
// stops the server rather than serving weaker) or ctx ends first.
func New(ctx context.Context, cfg Config) (_ *Pool, retErr error) {
	cfg = cfg.withDefaults()
	if cfg.Size <= 0 {
		return nil, errors.New("pool size must be at least 1 (cold mode is NewCold)")
	}
	p := &Pool{runner: newRunner(cfg), wake: make(chan struct{}, 1), closed: make(chan struct{})}
	var err error
	p.p, err = puddle.NewPool(&puddle.Config[*slot]{
		// Called by CreateResource at warm-up only: slots are never
		// destroyed while the pool is open, so Acquire never constructs.
		Constructor: func(ctx context.Context) (*slot, error) {
			w, err := p.spawn(ctx, true, p.poke)
			if err != nil {
				return nil, err
			}
			return &slot{w: w}, nil
		},
		Destructor: func(s *slot) {
			if s.w != nil {
				s.w.Kill()
			}
		},
		MaxSize: int32(cfg.Size),
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			p.cancel()
			p.p.Close()
			p.watch.Wait()
		}
	}()
	errs := make(chan error, cfg.Size)
	for range cfg.Size {
		go func() { errs <- p.p.CreateResource(ctx) }()
	}
	for range cfg.Size {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	if err != nil {
		return nil, err
	}
	p.bg.Add(1)
	go p.maintain()
	return p, nil
}

// Run runs job on a worker, waiting for one first come, first served. ctx
// bounds the wait and the job: when it ends, the job is killed. When a worker
// fails before the job reached it (worker.SafeToRetry), the job is offered
// to another, up to MaxAttempts workers in all. Errors other than
// ErrQueueFull, ErrQueueTimeout, ErrClosed and ctx's error mean the worker
// failed while running the job; it has been replaced.
func (p *Pool) Run(ctx context.Context, job worker.Job) (worker.Outcome, error) {
	if err := p.admit(); err != nil {
		return worker.Outcome{}, err
	}
	defer p.leave()
	start := time.Now()
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			p.waiting.Add(1)
		}
		res, err := p.acquire(ctx)
		if err != nil {
			return worker.Outcome{}, err
		}
		if attempt == 1 {
			p.observeWait(start)
		}
		w := res.Value().w
		out, err := p.run(w, ctx, job)
		if err == nil {
			annotate(ctx, w, attempt)
			p.bg.Add(1)
			go p.recycle(res)
			return out, nil
		}
		if worker.Reusable(err) { // cancelled: the template killed the job and stayed clean
			annotate(ctx, w, attempt)
			p.bg.Add(1)
			go p.recycle(res)
			return out, p.jobErr(err)
		}
		err = p.jobErr(err)
		p.replace(res, reason(err))
		if !worker.SafeToRetry(err) || attempt >= p.cfg.MaxAttempts || ctx.Err() != nil || p.killing.Load() {
			annotate(ctx, w, attempt)
			return out, err
		}
		p.retries.Add(1)
		p.log.Info().Err(err).Int("pid", w.Pid()).Int("attempt", attempt).Msg("job did not reach its worker; trying another")
	}
}

// acquire waits up to QueueTimeout for a live idle worker. It takes the
// caller out of the waiting count when it returns.
func (p *Pool) acquire(ctx context.Context) (*puddle.Resource[*slot], error) {
	defer p.waiting.Add(-1)
	actx, cancel := context.WithTimeout(ctx, p.cfg.QueueTimeout)
	defer cancel()
	stop := context.AfterFunc(p.ctx, cancel) // Close gave up waiting
	defer stop()
	for {
		// puddle's semaphore serves waiters in arrival order.
		res, err := p.p.Acquire(actx)
		switch {
		case err == nil:
		case errors.Is(err, puddle.ErrClosedPool), p.ctx.Err() != nil:
			return nil, ErrClosed
		case ctx.Err() != nil:
			return nil, ctx.Err()
		default:
			return nil, ErrQueueTimeout
		}
		if !dead(res.Value().w) {
			return res, nil
		}
		// Died while idle (the OOM killer, a crash) and the health loop
		// has not seen it yet: never hand it out.
		p.replace(res, "died_idle")
	}
}

// recycle returns a worker to the pool once it has a fresh job child, and
// replaces it when it does not get one.
func (p *Pool) recycle(res *puddle.Resource[*slot]) {
	defer p.bg.Done()
	w := res.Value().w
	if err := w.WaitReady(p.ctx); err != nil {
		if p.ctx.Err() == nil {
			p.log.Warn().Err(err).Int("pid", w.Pid()).Msg("worker not ready after job")
		}
		p.replace(res, "not_ready")
		return
	}
	p.release(res)
}

// release makes res's worker idle again. A worker that died while this
// goroutine held it woke the health check too early, when the worker was not
// idle to be checked: wake it again now that it is.
func (p *Pool) release(res *puddle.Resource[*slot]) {
	w := res.Value().w
	res.Release()
	select {
	case <-w.Died():
		p.poke()
	default:
	}
}

// replace kills the worker in res's slot and starts another in its place,
// at once and in the background. The slot stays acquired until the new
// worker is ready; then Release hands it to the head of the queue. Spawns
// that fail are retried with backoff until the pool closes.
func (p *Pool) replace(res *puddle.Resource[*slot], why string) {
	s := res.Value()
	old := s.w
	if p.ctx.Err() == nil {
		p.countKill(why)
		p.log.Info().Int("pid", old.Pid()).Str("reason", why).Msg("replacing worker")
	}
	p.replacing.Add(1)
	p.bg.Add(2)
	go func() {
		defer p.bg.Done()
		old.Kill()
	}()
	go func() {
		defer p.bg.Done()
		defer p.replacing.Add(-1)
		w, err := p.respawn()
		if err != nil { // the pool is closing
			s.w = nil
			res.Destroy()
			return
		}
		s.w = w
		p.release(res)
	}()
}

// respawn starts a warm worker, retrying with backoff, until one is ready
// or the pool's context ends.
func (p *Pool) respawn() (*worker.Worker, error) {
	backoff := 250 * time.Millisecond
	for {
		w, err := p.spawn(p.ctx, true, p.poke)
		if err == nil || p.ctx.Err() != nil {
			return w, err
		}
		p.log.Error().Dur("retry_in", backoff).Msg("replacing worker: spawn failed")
		t := time.NewTimer(backoff)
		select {
		case <-p.ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w: %w", ErrClosed, err)
		case <-t.C:
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// poke asks the health loop to check the idle workers now.
func (p *Pool) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// maintain is the health loop: whenever a worker dies, and every
// HealthCheckPeriod as a backstop, it takes every idle worker (puddle's
// AcquireAllIdle, as pgxpool's health check does) and replaces the dead ones.
func (p *Pool) maintain() {
	defer p.bg.Done()
	t := time.NewTicker(p.cfg.HealthCheckPeriod)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-p.wake:
		case <-t.C:
		}
		p.check()
	}
}

// check replaces the idle workers that have died.
func (p *Pool) check() {
	p.checking.Lock()
	defer p.checking.Unlock()
	for _, res := range p.p.AcquireAllIdle() {
		if dead(res.Value().w) {
			p.replace(res, "died_idle")
		} else {
			res.ReleaseUnused()
		}
	}
}

// Close shuts the pool down in order. It stops admitting jobs at once (Run
// returns ErrClosed), lets running and queued jobs finish until ctx ends,
// then kills every worker, running or idle (their jobs get errors wrapping
// ErrClosed), and returns once every worker has exited and every goroutine
// of the pool has returned: the wait after ctx ends is bounded by the kill
// timeouts, never by a spawn. It is idempotent; a second call returns when
// the first has.
func (p *Pool) Close(ctx context.Context) {
	if p.closeOnce.Swap(true) {
		<-p.closed
		return
	}
	defer close(p.closed)
	drained := p.stopAdmitting()
	select {
	case <-drained:
		p.cancel() // spawns, ready waits and the health loop end
	case <-ctx.Done():
		p.log.Warn().Int("busy", p.Stat().Busy).Int("waiting", p.Stat().Waiting).
			Msg("shutdown grace over: killing running jobs")
		p.killing.Store(true) // jobs that fail from now on get ErrClosed
		p.cancel()            // queued jobs get ErrClosed; spawns stop
		p.killAll()
	}
	<-drained
	p.bg.Wait()    // every slot is back in puddle now
	p.p.Close()    // destroys (kills) the idle workers
	p.watch.Wait() // every worker has died
}

// Stat returns a snapshot of the pool.
func (p *Pool) Stat() Stat {
	s := p.stat()
	p.checking.Lock()
	ps := p.p.Stat()
	replacing := int(p.replacing.Load())
	p.checking.Unlock()
	s.Size = p.cfg.Size
	s.Idle = int(ps.IdleResources())
	s.Busy = max(int(ps.AcquiredResources())-replacing, 0)
	s.Starting = int(ps.ConstructingResources()) + replacing
	return s
}
