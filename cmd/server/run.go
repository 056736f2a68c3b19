package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/python-executor/python-executor/internal/api"
	"github.com/python-executor/python-executor/internal/metrics"
	"github.com/python-executor/python-executor/internal/pool"
	"github.com/python-executor/python-executor/internal/sandbox"
	"github.com/python-executor/python-executor/internal/worker"
	"github.com/python-executor/python-executor/python"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// run serves until ctx ends, then shuts down in order (see shutdown) and
// returns once every handler has answered and every worker has exited.
func run(ctx context.Context, cfg Config, log zerolog.Logger) error {
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		return err
	}
	log = log.Level(level)

	minLevel, needLandlock, err := cfg.requirements()
	if err != nil {
		return err
	}
	sb, err := sandbox.New(sandbox.Config{
		Mode:              cfg.Isolation,
		MinLevel:          minLevel,
		RequireLandlock:   needLandlock,
		InsecureSharedUID: cfg.InsecureSharedUID,
		UID:               cfg.WorkerUID,
		GID:               cfg.WorkerGID,
		UIDs:              cfg.WorkerUIDs,
		ScratchBytes:      cfg.ScratchMB << 20,
		PassEnv:           strings.Split(cfg.PassEnv, ","),
		JobMemoryBytes:    cfg.MemoryMB << 20,
		Root:              cfg.PythonRoot,
	})
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	defer sb.Close()
	if uids := sb.Swept(); len(uids) > 0 {
		log.Warn().Ints("uids", uids).Msg("killed processes that a server before this one left running under its worker uids")
	}
	memCgroup, memReason := sb.MemoryCgroup()
	if !memCgroup {
		log.Warn().Str("reason", memReason).
			Msg("no memory cgroup: each job process is capped at --memory-mb by RLIMIT_AS, and the template polls the sum of a job's processes (see SECURITY.md)")
	}
	if abi, why := sb.LandlockStatus(); abi < sandbox.LandlockFullABI {
		log.Warn().Int("landlock_abi", abi).Str("reason", why).
			Msg("Landlock is missing or partial: see SECURITY.md for what jobs can reach without it")
	}
	if reason := sb.Degraded(); reason != "" {
		log.Warn().Str("isolation", sb.Level().String()).Str("reason", reason).
			Msg("running WITHOUT namespace isolation: jobs can read the host filesystem; see SECURITY.md")
	}

	keys, err := cfg.apiKeys()
	if err != nil {
		return err
	}
	var jobs runner // set below, before anything scrapes
	m := metrics.New(func() pool.Stat { return jobs.Stat() })

	concurrent := cfg.PoolSize
	if concurrent == 0 {
		concurrent = cfg.ColdConcurrency
	}
	fileGrowth, err := fileTableGrowth(concurrent)
	if err != nil {
		// gVisor's file table is the sandbox's own: no host table to fill.
		log.Warn().Err(err).Msg("the host's count of open files is unreadable: jobs' mapped files are not checked against it (see SECURITY.md)")
	}
	limits := worker.Limits{
		MemoryBytes: cfg.MemoryMB << 20,
		StdoutBytes: cfg.StdoutLimitBytes,
		ResultBytes: cfg.ResultLimitBytes,
		FileBytes:   cfg.ScratchMB << 20,
		Procs:       cfg.MaxProcs,
		OpenFiles:   cfg.MaxOpenFiles,
		// What every worker's job may hold in files at once, at least
		// 1 GiB: another job's files, or the host's, do not end this one.
		UnnamedDiskBytes: max(1<<30, int64(cfg.PoolSize)*cfg.ScratchMB<<20),
		ScratchEntries:   100_000,
		FileTableGrowth:  fileGrowth,

		OutputFiles:      cfg.MaxFiles,
		OutputFilesBytes: cfg.MaxFilesBytes,
	}
	preload, err := cfg.preload()
	if err != nil {
		return err
	}
	if cfg.PoolSize == 0 {
		preload = []string{} // cold mode: every job starts a fresh interpreter
		if cfg.Preload != "numpy,pandas" {
			log.Warn().Str("preload", cfg.Preload).Msg("--preload has no effect in cold mode (--pool-size 0)")
		}
	}
	wcfg := worker.Config{
		Python:       cfg.Python,
		Program:      python.Worker,
		Preload:      preload,
		Sandbox:      sb,
		Limits:       limits,
		StartTimeout: cfg.StartTimeout,
		Logger:       log.With().Str("component", "worker").Logger(),
	}
	// One template first, in the jobs' sandbox, says what /info reports.
	// Before the pool, not beside it: it holds a worker uid while it runs,
	// and the pool may need every one.
	probeStart := time.Now()
	py, err := worker.Probe(ctx, wcfg)
	if err != nil {
		return fmt.Errorf("checking the jobs' Python: %w", err)
	}
	log.Info().Str("python", py.Version).Strs("preload", py.Preload).Interface("packages", py.Packages).
		Dur("took", time.Since(probeStart)).Msg("jobs' Python")
	pcfg := pool.Config{
		Size:            cfg.PoolSize,
		QueueWait:       m.QueueWait,
		ColdConcurrency: cfg.ColdConcurrency,
		MaxQueue:        cfg.QueueSize,
		QueueTimeout:    cfg.QueueTimeout,
		Logger:          log.With().Str("component", "pool").Logger(),
		Worker:          wcfg,
	}
	start := time.Now()
	if cfg.PoolSize == 0 {
		jobs, err = pool.NewCold(ctx, pcfg)
	} else {
		jobs, err = pool.New(ctx, pcfg)
	}
	if err != nil {
		return fmt.Errorf("starting workers: %w", err)
	}
	defer jobs.Close(context.Background()) // on early returns; no job runs then
	mode := "warm"
	if cfg.PoolSize == 0 {
		mode = "cold"
	}
	log.Info().Str("isolation", sb.Level().String()).Int("pool_size", cfg.PoolSize).Str("mode", mode).
		Dur("warmup", time.Since(start)).Msg("worker pool ready")

	info := map[string]any{
		"service":   "python-executor",
		"version":   version,
		"isolation": sb.Level().String(),
		"mode":      mode,
		"pool_size": cfg.PoolSize,
		"python":    py,
		"limits": map[string]any{
			"default_timeout_s":  cfg.DefaultTimeout.Seconds(),
			"max_timeout_s":      cfg.MaxTimeout.Seconds(),
			"max_script_bytes":   cfg.MaxScriptBytes,
			"stdout_limit_bytes": cfg.StdoutLimitBytes,
			"result_limit_bytes": cfg.ResultLimitBytes,
			"memory_mb":          cfg.MemoryMB,
			"scratch_mb":         cfg.ScratchMB,
			"max_procs":          cfg.MaxProcs,
			"max_open_files":     cfg.MaxOpenFiles,
			"max_files":          cfg.MaxFiles,
			"max_files_bytes":    cfg.MaxFilesBytes,
		},
	}
	if sb.Degraded() != "" {
		// A fixed phrase: the probe's own message (bubblewrap's stderr) is
		// in the log above, not for anyone who asks /info.
		info["isolation_reason"] = "user namespaces unavailable"
		if cfg.Isolation == "basic" {
			info["isolation_reason"] = "basic isolation configured"
		}
	}
	info["memory_cgroup"] = memCgroup
	abi, _ := sb.LandlockStatus()
	info["landlock"] = abi
	info["worker_uids"] = sb.PerWorkerUIDs()
	info["auth"] = len(keys) > 0
	handler := api.Handler(api.Config{
		MaxScriptBytes:    cfg.MaxScriptBytes,
		DefaultTimeout:    cfg.DefaultTimeout,
		MaxTimeout:        cfg.MaxTimeout,
		Info:              info,
		APIKeys:           keys,
		PerKeyConcurrency: cfg.PerKeyConc,
		Metrics:           m,
		MaxFiles:          cfg.MaxFiles,
		MaxFilesBytes:     cfg.MaxFilesBytes,
		MaxMemoryMB:       cfg.MemoryMB,
		MaxStdoutBytes:    cfg.StdoutLimitBytes,
		Playground:        cfg.Playground,
	}, jobs, log)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	var handlers sync.WaitGroup
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			handlers.Add(1)
			defer handlers.Done()
			handler.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      cfg.MaxTimeout + cfg.QueueTimeout + 30*time.Second,
		IdleTimeout:       120 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(steadyListener{Listener: ln, log: log}) }()
	log.Info().Str("addr", ln.Addr().String()).Msg("listening")

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown(log, cfg.ShutdownGrace, srv, jobs)
	handlers.Wait()
	<-errc // http.ErrServerClosed
	log.Info().Msg("stopped")
	return nil
}

// runner is a pool.Pool or a pool.Cold.
type runner interface {
	api.Runner
	Close(context.Context)
}

// flushTimeout is how long handlers have to send their answers once every
// job has ended.
const flushTimeout = 5 * time.Second

// shutdown stops the service in order. New jobs are refused at once (503
// "shutting down", connections closed after each answer, /ready 503) while
// the listener stays open, so a load balancer that has not yet noticed gets
// an answer rather than a refused connection. Running and queued jobs have
// grace to finish; then every worker is killed and their jobs answered 503.
// Last, the listener closes and handlers get flushTimeout to send their
// answers before their connections are closed.
func shutdown(log zerolog.Logger, grace time.Duration, srv *http.Server, jobs runner) {
	log.Info().Dur("grace", grace).Msg("shutting down: refusing new jobs, finishing running and queued ones")
	srv.SetKeepAlivesEnabled(false)
	gctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	jobs.Close(gctx)
	log.Info().Msg("every job has ended and every worker has exited")
	fctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	if err := srv.Shutdown(fctx); err != nil {
		log.Warn().Err(err).Msg("closing connections that did not finish answering")
		srv.Close()
	}
}
