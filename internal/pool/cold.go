package pool

import (
	"context"
	"time"

	"github.com/python-executor/python-executor/internal/worker"
)

// Cold runs every job in a fresh interpreter that imports nothing ahead of
// the script, in the same sandbox as a Pool's workers, and lets it exit
// afterwards: the baseline the benchmarks compare the pool with. It has the
// same Run, Stat and Close as a Pool.
type Cold struct {
	*runner
	slots chan struct{} // one token per running job
}

// NewCold returns a cold runner once one worker has started and stopped, so
// a set-up that cannot work fails now rather than on the first request.
func NewCold(ctx context.Context, cfg Config) (*Cold, error) {
	cfg = cfg.withDefaults()
	c := &Cold{runner: newRunner(cfg), slots: make(chan struct{}, cfg.ColdConcurrency)}
	w, err := c.spawn(ctx, false, nil)
	if err != nil {
		c.cancel()
		return nil, err
	}
	w.Close()
	c.watch.Wait()
	return c, nil
}

// Run runs job in a new worker once fewer than ColdConcurrency jobs run,
// waiting up to QueueTimeout for that; otherwise as Pool.Run.
func (c *Cold) Run(ctx context.Context, job worker.Job) (worker.Outcome, error) {
	if err := c.admit(); err != nil {
		return worker.Outcome{}, err
	}
	defer c.leave()
	start := time.Now()
	if err := c.acquire(ctx); err != nil {
		return worker.Outcome{}, err
	}
	c.observeWait(start)
	release := true
	defer func() {
		if release {
			<-c.slots
		}
	}()
	for attempt := 1; ; attempt++ {
		w, err := c.spawn(ctx, false, nil)
		if err != nil {
			return worker.Outcome{}, c.jobErr(err)
		}
		out, err := c.run(w, ctx, job)
		if err == nil {
			annotate(ctx, w, attempt)
			// Answer now; the slot is free once the worker has exited.
			release = false
			c.bg.Add(1)
			go func() {
				defer c.bg.Done()
				w.Close()
				<-c.slots
			}()
			return out, nil
		}
		err = c.jobErr(err)
		w.Kill()
		if !worker.SafeToRetry(err) || attempt >= c.cfg.MaxAttempts || ctx.Err() != nil || c.killing.Load() {
			annotate(ctx, w, attempt)
			return out, err
		}
		c.retries.Add(1)
	}
}

// acquire takes a job slot, waiting up to QueueTimeout.
func (c *Cold) acquire(ctx context.Context) error {
	defer c.waiting.Add(-1)
	t := time.NewTimer(c.cfg.QueueTimeout)
	defer t.Stop()
	select {
	case c.slots <- struct{}{}:
		return nil
	case <-t.C:
		return ErrQueueTimeout
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return ErrClosed
	}
}

// Close stops admitting jobs, lets running and queued ones finish until ctx
// ends, then kills every worker and waits for them to exit, as Pool.Close.
func (c *Cold) Close(ctx context.Context) {
	drained := c.stopAdmitting()
	select {
	case <-drained:
	case <-ctx.Done():
		c.killing.Store(true)
		c.cancel()
		c.killAll()
	}
	c.cancel()
	<-drained
	c.bg.Wait()
	c.watch.Wait()
}

// Stat returns a snapshot of the runner.
func (c *Cold) Stat() Stat {
	s := c.stat()
	s.Busy = len(c.slots)
	return s
}
