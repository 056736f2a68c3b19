package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/puddle/v2"
	"github.com/rs/zerolog"

	"github.com/python-executor/python-executor/internal/worker"
)

var (
	// ErrQueueFull: MaxQueue requests are already waiting for a worker.
	ErrQueueFull = errors.New("queue full")
	// ErrQueueTimeout: no worker became free within QueueTimeout.
	ErrQueueTimeout = errors.New("timed out waiting for a worker")
	// ErrClosed: the pool is shutting down.
	ErrClosed = errors.New("pool closed")
)

// Config configures a Pool. Zero fields take the defaults in withDefaults.
type Config struct {
	// Size is the number of warm workers, and so of jobs that run at once.
	// 0 selects cold mode (see the package doc).
	Size int
	// ColdConcurrency bounds concurrent jobs in cold mode. Default 2.
	ColdConcurrency int
	// MaxQueue is how many requests may wait for a worker; one more gets
	// ErrQueueFull at once. Default 64.
	MaxQueue int
	// QueueTimeout is how long a request may wait for a worker. Default 10s.
	QueueTimeout time.Duration
	// Worker is how each worker is started.
	Worker worker.Config
	// QueueWait, if set, is told how long each job waited for a worker.
	QueueWait func(time.Duration)
	Logger    zerolog.Logger
}

func (c Config) withDefaults() Config {
	if c.ColdConcurrency <= 0 {
		c.ColdConcurrency = 2
	}
	if c.MaxQueue <= 0 {
		c.MaxQueue = 64
	}
	if c.QueueTimeout <= 0 {
		c.QueueTimeout = 10 * time.Second
	}
	if c.Worker.StartTimeout <= 0 {
		c.Worker.StartTimeout = 30 * time.Second
	}
	return c
}

// Pool runs jobs on warm workers.
type Pool struct {
	cfg  Config
	log  zerolog.Logger
	p    *puddle.Pool[*worker.Worker] // nil in cold mode
	cold chan struct{}                // cold-mode slots

	waiting atomic.Int64
	mu      sync.Mutex
	queue   []chan struct{} // requests waiting for a worker, oldest first
	wake    chan struct{}   // asks the background loop to refill now
	closing chan struct{}
	done    chan struct{}
	close   sync.Once

	workers sync.Map // *worker.Worker -> struct{}: every live worker, for Close

	spawns, spawnFailures atomic.Int64
	kills                 sync.Map // reason -> *atomic.Int64
	lastSpawnErr          atomic.Pointer[string]
}

// New starts the pool and waits until every worker is warm. It fails if the
// first worker cannot start: a sandbox that cannot be applied stops the
// server rather than serving weaker.
func New(ctx context.Context, cfg Config) (*Pool, error) {
	cfg = cfg.withDefaults()
	p := &Pool{
		cfg:     cfg,
		log:     cfg.Logger,
		wake:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	if cfg.Size == 0 {
		p.cold = make(chan struct{}, cfg.ColdConcurrency)
		close(p.done)
		// Start and stop one cold worker so a broken set-up fails now.
		w, err := p.spawn(ctx, false)
		if err != nil {
			return nil, err
		}
		w.Close()
		return p, nil
	}
	var err error
	p.p, err = puddle.NewPool(&puddle.Config[*worker.Worker]{
		Constructor: func(context.Context) (*worker.Worker, error) {
			// puddle does not pass Acquire's deadline here; the spawn has
			// its own (Worker.StartTimeout), and the pool's lifetime.
			return p.spawn(context.Background(), true)
		},
		Destructor: func(w *worker.Worker) { w.Kill() },
		MaxSize:    int32(cfg.Size),
	})
	if err != nil {
		return nil, err
	}
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
		p.p.Close()
		return nil, err
	}
	go p.maintain()
	return p, nil
}

func (p *Pool) spawn(ctx context.Context, warm bool) (*worker.Worker, error) {
	cfg := p.cfg.Worker
	cfg.Warm, cfg.OneShot = warm, !warm
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	start := time.Now()
	w, err := worker.Start(ctx, cfg)
	if err != nil {
		p.spawnFailures.Add(1)
		msg := err.Error()
		p.lastSpawnErr.Store(&msg)
		return nil, err
	}
	p.spawns.Add(1)
	p.lastSpawnErr.Store(nil)
	p.workers.Store(w, struct{}{})
	go func() {
		<-w.Exited()
		p.workers.Delete(w)
	}()
	p.log.Debug().Int("pid", w.Pid()).Dur("took", time.Since(start)).Bool("warm", warm).Msg("worker started")
	return w, nil
}

// Run runs job on a worker. ctx bounds the wait for a worker and the job:
// when it ends, the job is killed. Errors other than ErrQueueFull,
// ErrQueueTimeout, ErrClosed and ctx's error mean the worker failed (it has
// been replaced).
func (p *Pool) Run(ctx context.Context, job worker.Job) (worker.Outcome, error) {
	if p.waiting.Add(1) > int64(p.cfg.MaxQueue) {
		p.waiting.Add(-1)
		return worker.Outcome{}, ErrQueueFull
	}
	if p.p == nil {
		return p.runCold(ctx, job)
	}
	start := time.Now()
	res, err := p.acquire(ctx)
	p.waiting.Add(-1)
	if err != nil {
		return worker.Outcome{}, err
	}
	p.observeWait(start)
	w := res.Value()
	out, err := w.Run(ctx, job)
	if err != nil && worker.Reusable(err) {
		go p.recycle(res) // the template killed the job and stayed clean
		return out, err
	}
	if err != nil {
		p.destroy(res, reason(err))
		return out, err
	}
	go p.recycle(res)
	return out, nil
}

// acquire waits for an idle worker, first come first served, without ever
// constructing one on the caller's path: puddle's Acquire would, and a spawn
// takes hundreds of milliseconds while a busy worker frees up in a few.
func (p *Pool) acquire(ctx context.Context) (*puddle.Resource[*worker.Worker], error) {
	p.mu.Lock()
	if len(p.queue) == 0 { // nobody ahead: no need to queue if one is idle
		if res, ok, err := p.take(); ok {
			p.mu.Unlock()
			return res, err
		}
	}
	turn := make(chan struct{}, 1)
	p.queue = append(p.queue, turn)
	p.mu.Unlock()
	defer p.leave(turn)

	timer := time.NewTimer(p.cfg.QueueTimeout)
	defer timer.Stop()
	poll := time.NewTicker(5 * time.Millisecond) // workers that TryAcquire started in the background arrive without a signal
	defer poll.Stop()
	for {
		select {
		case <-turn:
		case <-poll.C:
		case <-timer.C:
			return nil, ErrQueueTimeout
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-p.closing:
			return nil, ErrClosed
		}
		p.mu.Lock()
		if p.queue[0] == turn { // only the head of the queue may take a worker
			if res, ok, err := p.take(); ok {
				p.mu.Unlock()
				return res, err
			}
		}
		p.mu.Unlock()
	}
}

// take tries to get an idle, live worker; ok reports whether the caller is
// done (with a worker or with ErrClosed). A worker that died while idle (the
// OOM killer, or, at basic level, another job) is destroyed, not handed out.
func (p *Pool) take() (*puddle.Resource[*worker.Worker], bool, error) {
	for {
		res, err := p.p.TryAcquire(context.Background())
		if errors.Is(err, puddle.ErrClosedPool) {
			return nil, true, ErrClosed
		}
		if err != nil {
			return nil, false, nil
		}
		select {
		case <-res.Value().Exited():
			p.destroy(res, "died_idle")
		default:
			return res, true, nil
		}
	}
}

// leave takes turn out of the queue and, when the waiter behind may now be
// at the head with a worker idle, wakes it.
func (p *Pool) leave(turn chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, t := range p.queue {
		if t == turn {
			p.queue = append(p.queue[:i], p.queue[i+1:]...)
			break
		}
	}
	if len(p.queue) > 0 && p.p.Stat().IdleResources() > 0 {
		poke(p.queue[0])
	}
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// recycle returns the worker to the pool once it has a fresh job child.
func (p *Pool) recycle(res *puddle.Resource[*worker.Worker]) {
	if err := res.Value().WaitReady(context.Background()); err != nil {
		p.log.Warn().Err(err).Int("pid", res.Value().Pid()).Msg("worker not ready after job")
		p.destroy(res, "not_ready")
		return
	}
	res.Release()
	p.notifyIdle()
}

func (p *Pool) destroy(res *puddle.Resource[*worker.Worker], why string) {
	p.countKill(why)
	p.log.Info().Int("pid", res.Value().Pid()).Str("reason", why).Msg("destroying worker")
	res.Destroy()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// notifyIdle wakes the head of the queue: a worker became idle.
func (p *Pool) notifyIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) > 0 {
		poke(p.queue[0])
	}
}

func reason(err error) string {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "cancelled"
	case errors.Is(err, worker.ErrUnresponsive):
		return "unresponsive"
	case errors.Is(err, worker.ErrExited):
		return "exited"
	case errors.Is(err, worker.ErrProtocol):
		return "protocol"
	}
	return "error"
}

func (p *Pool) countKill(why string) {
	c, _ := p.kills.LoadOrStore(why, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
}

func (p *Pool) observeWait(start time.Time) {
	if p.cfg.QueueWait != nil {
		p.cfg.QueueWait(time.Since(start))
	}
}

func (p *Pool) runCold(ctx context.Context, job worker.Job) (worker.Outcome, error) {
	start := time.Now()
	timer := time.NewTimer(p.cfg.QueueTimeout)
	defer timer.Stop()
	select {
	case p.cold <- struct{}{}:
		p.waiting.Add(-1)
		p.observeWait(start)
	case <-timer.C:
		p.waiting.Add(-1)
		return worker.Outcome{}, ErrQueueTimeout
	case <-ctx.Done():
		p.waiting.Add(-1)
		return worker.Outcome{}, ctx.Err()
	}
	w, err := p.spawn(ctx, false)
	if err != nil {
		<-p.cold
		return worker.Outcome{}, err
	}
	out, err := w.Run(ctx, job)
	// Answer now; the slot is free once the worker has exited.
	go func() {
		w.Close()
		<-p.cold
	}()
	return out, err
}

// maintain keeps the pool at Size workers until Close.
func (p *Pool) maintain() {
	defer close(p.done)
	ticker := time.NewTicker(500 * time.Millisecond)
	defer ticker.Stop()
	backoff := time.Duration(0)
	for {
		select {
		case <-p.closing:
			return
		case <-p.wake:
		case <-ticker.C:
		}
		if backoff > 0 {
			select {
			case <-p.closing:
				return
			case <-time.After(backoff):
			}
		}
		if err := p.fill(); err != nil {
			backoff = min(max(2*backoff, 250*time.Millisecond), 30*time.Second)
			p.log.Error().Err(err).Dur("retry_in", backoff).Msg("spawning worker")
			continue
		}
		backoff = 0
	}
}

// fill spawns workers until the pool is at Size.
func (p *Pool) fill() error {
	for p.p.Stat().TotalResources() < int32(p.cfg.Size) {
		err := p.p.CreateResource(context.Background())
		switch {
		case errors.Is(err, puddle.ErrNotAvailable):
			return nil // a destroyed worker still holds its slot; retry on the next tick
		case err != nil:
			return err
		}
		p.notifyIdle()
	}
	return nil
}

// Close stops refilling and lets running jobs finish until ctx ends; then it
// kills every worker, running or idle, and waits for them to exit. It is
// idempotent; later calls return at once.
func (p *Pool) Close(ctx context.Context) {
	p.close.Do(func() {
		close(p.closing)
		<-p.done
		closed := make(chan struct{})
		go func() {
			if p.p != nil {
				p.p.Close() // waits for acquired workers, destroys all
			}
			for len(p.cold) > 0 { // cold jobs kill their own worker
				time.Sleep(10 * time.Millisecond)
			}
			close(closed)
		}()
		select {
		case <-closed:
		case <-ctx.Done():
			p.workers.Range(func(k, _ any) bool {
				k.(*worker.Worker).Kill()
				return true
			})
			<-closed
		}
	})
}

// Stat is a snapshot of the pool.
type Stat struct {
	Size          int
	Idle          int
	Busy          int
	Starting      int
	Waiting       int
	MaxQueue      int
	Spawns        int64
	SpawnFailures int64
	LastSpawnErr  string
	Kills         map[string]int64 // by reason
}

// Stat returns a snapshot of the pool.
func (p *Pool) Stat() Stat {
	s := Stat{Size: p.cfg.Size, Waiting: int(max(p.waiting.Load(), 0)), MaxQueue: p.cfg.MaxQueue, Spawns: p.spawns.Load(),
		SpawnFailures: p.spawnFailures.Load(), Kills: map[string]int64{}}
	if e := p.lastSpawnErr.Load(); e != nil {
		s.LastSpawnErr = *e
	}
	p.kills.Range(func(k, v any) bool {
		s.Kills[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	if p.p != nil {
		ps := p.p.Stat()
		s.Idle, s.Busy, s.Starting = int(ps.IdleResources()), int(ps.AcquiredResources()), int(ps.ConstructingResources())
	} else {
		s.Busy = len(p.cold)
	}
	return s
}

// Ready reports whether the pool should be sent more work: it has warm
// workers, and its queue is less than half full. (Not "no request waits": a
// busy pool always has a few waiting, and if every replica turned unready at
// once, a load balancer would have nowhere to send anything.)
func (s Stat) Ready() (bool, string) {
	if s.Size > 0 && s.Idle+s.Busy == 0 {
		if s.LastSpawnErr != "" {
			return false, "no warm workers: " + s.LastSpawnErr
		}
		return false, "no warm workers yet"
	}
	if s.Idle == 0 && s.Waiting > 0 && s.Waiting >= (s.MaxQueue+1)/2 {
		return false, fmt.Sprintf("saturated: %d of %d queue places taken", s.Waiting, s.MaxQueue)
	}
	return true, ""
}
