// Package pool runs jobs on workers: Pool keeps a fixed number of warm
// workers and hands them out one job at a time; Cold starts a fresh worker
// per job. Both have Run, Stat and Close.
//
// Pool wraps github.com/jackc/puddle/v2 the way pgxpool does: a documented
// Config with defaults set in one place, workers constructed off the request
// path (at warm-up, and as replacements in the background), a health loop
// that checks idle workers with AcquireAllIdle, and Stat for readiness and
// metrics. Requests wait in puddle's semaphore, first come, first served, and
// get whichever worker is free first: one that finished its job or a
// replacement that became ready. A request never waits for a spawn while a
// busy worker could free up sooner, because a slot whose worker broke stays
// taken until its replacement is ready.
//
// A worker goes back to the pool only when it answered its job as the
// protocol says and then announced a fresh, warm job child. After a
// cancelled request, a crash, a hang or a protocol error the worker is killed
// and replaced at once. A worker that dies while idle is noticed when its
// process exits (and by a periodic check), is never handed out, and is
// replaced; the kill is counted as died_idle. A job whose worker failed before
// the job reached it (worker.SafeToRetry) is offered to another worker, up
// to Config.MaxAttempts in all: it cannot have run, so it cannot run twice.
//
// Close shuts down in order: no new jobs, running and queued jobs finish
// within the caller's deadline, then every worker is killed and waited for.
//
// The package knows nothing of HTTP. It logs worker lifecycle events on the
// injected logger, and adds the worker's pid to the request's logger
// (zerolog.Ctx) so the access log names the worker that ran each job.
package pool
