package pool

import (
	"time"

	"github.com/rs/zerolog"

	"github.com/python-executor/python-executor/internal/worker"
)

// Config configures a Pool or a Cold runner. Zero fields take the defaults
// set in withDefaults, the one place defaults live.
type Config struct {
	// Size is the number of warm workers of a Pool, and so of jobs that run
	// at once. Unused by Cold.
	Size int
	// ColdConcurrency bounds the jobs a Cold runner runs at once. Default 2.
	ColdConcurrency int
	// MaxQueue is how many requests may wait for a worker; one more gets
	// ErrQueueFull at once. Default 64.
	MaxQueue int
	// QueueTimeout is how long a request may wait for a worker. Default 10s.
	QueueTimeout time.Duration
	// MaxAttempts bounds how many workers one job is offered to when the
	// ones before failed without the job reaching them
	// (worker.SafeToRetry). Default 3.
	MaxAttempts int
	// HealthCheckPeriod is how often idle workers are checked for a death
	// nothing else noticed. A worker's death also triggers a check at once.
	// Default 5s.
	HealthCheckPeriod time.Duration
	// Worker is how each worker is started; Worker.StartTimeout bounds each
	// spawn (default 30s).
	Worker worker.Config
	// QueueWait, if set, is told how long each job waited for a worker.
	QueueWait func(time.Duration)
	// Logger receives worker lifecycle events (component=pool).
	Logger zerolog.Logger
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
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.HealthCheckPeriod <= 0 {
		c.HealthCheckPeriod = 5 * time.Second
	}
	if c.Worker.StartTimeout <= 0 {
		c.Worker.StartTimeout = 30 * time.Second
	}
	return c
}
