package worker

import (
	"errors"
	"fmt"
)

var (
	// ErrFrameTooLarge is returned for a frame over the size limit.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrProtocol means the worker sent something the protocol does not allow.
	// The worker must be destroyed.
	ErrProtocol = errors.New("worker protocol violation")
	// ErrExited means the worker process is gone.
	ErrExited = errors.New("worker exited")
	// ErrUnresponsive means the worker missed a deadline the protocol gives it.
	ErrUnresponsive = errors.New("worker unresponsive")
	// ErrNotDelivered wraps any Run error from before the template
	// acknowledged the job: no job process has seen the script, so the job
	// is safe to retry on another worker (pgconn's SafeToRetry).
	ErrNotDelivered = errors.New("job not delivered")
)

// SafeToRetry reports whether err from Run means the job never reached a job
// process, so running it elsewhere cannot run it twice.
func SafeToRetry(err error) bool { return errors.Is(err, ErrNotDelivered) }

// StartError reports a worker that could not be brought up, with what the
// worker said about it when it said anything.
type StartError struct {
	Err    error  // the worker's own message or the Go-side failure
	Stderr string // tail of the interpreter's stderr
}

func (e *StartError) Error() string {
	if e.Stderr != "" {
		return fmt.Sprintf("starting worker: %v (stderr: %s)", e.Err, e.Stderr)
	}
	return fmt.Sprintf("starting worker: %v", e.Err)
}

func (e *StartError) Unwrap() error { return e.Err }

// ExitError describes how a worker process ended.
type ExitError struct {
	Code   int    // exit code, -1 when killed by a signal
	Signal string // signal name when killed by one
}

func (e *ExitError) Error() string {
	if e.Signal != "" {
		return "worker killed by " + e.Signal
	}
	return fmt.Sprintf("worker exited with code %d", e.Code)
}
