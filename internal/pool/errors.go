package pool

import "errors"

var (
	// ErrQueueFull: MaxQueue requests are already waiting for a worker.
	ErrQueueFull = errors.New("queue full")
	// ErrQueueTimeout: no worker became free within QueueTimeout.
	ErrQueueTimeout = errors.New("timed out waiting for a worker")
	// ErrClosed: the runner is shutting down. Run returns it for a job it did
	// not admit, for a queued job that got no worker within the grace, and,
	// wrapping the worker's error, for a job whose worker Close killed.
	ErrClosed = errors.New("pool closed")
)
