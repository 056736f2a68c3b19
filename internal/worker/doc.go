// Package worker starts and drives one sandboxed Python worker process.
//
// A Worker is a template interpreter (python/worker.py) that has imported
// numpy and pandas and never runs user code itself, nor holds a job's data:
// for every job Run writes the job into a sealed memfd and makes pipes for
// its stdout, stderr and result, and passes the four descriptors on a unix
// socket (the worker's fd 6); the template hands them unread to a
// pre-forked, pre-warmed, already confined child. After the job it kills
// every process the job started, empties the scratch space and forks the
// next child. Control frames (length-prefixed JSON, see WriteFrame) travel
// on two pipes, fd 3 in and fd 4 out: job, started (from then on the job is
// not safe to retry), cancel, done, ready, fatal. Nothing the script writes
// reaches those pipes.
//
// A Job with V1 set (POST /v1/execute) carries an input for main, files for
// the job's working directory and lower limits in the job's memfd, beside
// the script; the job process answers with a "v1" member in its result
// frame (the exception's type, line and script-only traceback, the files it
// created or changed, its open matplotlib figures, its CPU time and peak
// memory), which Run turns into Outcome.V1. A Job without V1 runs exactly as
// the seed API always did.
//
// Ownership: the caller that got a Worker from Start owns it. Run and
// WaitReady must not be called concurrently with each other. Kill may be
// called at any time from any goroutine, is idempotent, and returns once the
// process has exited (or a bounded wait has passed). One goroutine owns
// cmd.Wait and closes Exited.
//
// The package knows nothing of pools or HTTP.
package worker
