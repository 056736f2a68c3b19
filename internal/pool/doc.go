// Package pool keeps a fixed number of warm workers and hands them out one job
// at a time.
//
// It wraps github.com/jackc/puddle/v2 the way pgxpool does: a documented
// Config with defaults set in one place, one background goroutine that keeps
// the pool at its size (spawning replacements off the request path), and
// Stat for readiness and metrics.
//
// A worker goes back to the pool only when it answered its job as the
// protocol says and then announced a fresh, warm job child; the job's
// processes and files are gone by then (see package worker). After a
// cancelled request, a crash, a hang or a protocol error the worker is
// killed and a new one is spawned in the background.
//
// With Size 0 the pool runs in cold mode: every job starts a fresh
// interpreter that imports nothing ahead of the script, in the same sandbox,
// and kills it afterwards. This is the baseline the benchmarks compare with.
//
// The package knows nothing of HTTP and does not log on its own beyond worker
// lifecycle events on the injected logger.
package pool
