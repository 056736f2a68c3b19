package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
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

// run serves until ctx ends, then shuts down gracefully: it stops accepting,
// lets running jobs finish for ShutdownGrace, and kills every worker.
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
		Mode:            cfg.Isolation,
		MinLevel:        minLevel,
		RequireLandlock: needLandlock,
		UID:             cfg.WorkerUID,
		GID:             cfg.WorkerGID,
		UIDs:            cfg.WorkerUIDs,
		ScratchBytes:    cfg.ScratchMB << 20,
		PassEnv:         strings.Split(cfg.PassEnv, ","),
		JobMemoryBytes:  cfg.MemoryMB << 20,
	})
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	defer sb.Close()
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
	var p *pool.Pool // set below, before anything scrapes
	m := metrics.New(func() pool.Stat { return p.Stat() })

	limits := worker.Limits{
		MemoryBytes: cfg.MemoryMB << 20,
		StdoutBytes: cfg.StdoutLimitBytes,
		ResultBytes: cfg.ResultLimitBytes,
		FileBytes:   cfg.ScratchMB << 20,
		Procs:       cfg.MaxProcs,
		OpenFiles:   cfg.MaxOpenFiles,

		OutputFiles:      cfg.MaxFiles,
		OutputFilesBytes: cfg.MaxFilesBytes,
	}
	start := time.Now()
	p, err = pool.New(ctx, pool.Config{
		Size:            cfg.PoolSize,
		QueueWait:       m.QueueWait,
		ColdConcurrency: cfg.ColdConcurrency,
		MaxQueue:        cfg.QueueSize,
		QueueTimeout:    cfg.QueueTimeout,
		Logger:          log.With().Str("component", "pool").Logger(),
		Worker: worker.Config{
			Python:       cfg.Python,
			Program:      python.Worker,
			Sandbox:      sb,
			Limits:       limits,
			StartTimeout: cfg.StartTimeout,
			Logger:       log.With().Str("component", "worker").Logger(),
		},
	})
	if err != nil {
		return fmt.Errorf("starting worker pool: %w", err)
	}
	defer p.Close(context.Background())
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
	if r := sb.Degraded(); r != "" {
		info["isolation_reason"] = r
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
	}, p, log)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      cfg.MaxTimeout + cfg.QueueTimeout + 30*time.Second,
		IdleTimeout:       120 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info().Str("addr", ln.Addr().String()).Msg("listening")

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info().Dur("grace", cfg.ShutdownGrace).Msg("shutting down: draining running jobs")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn().Err(err).Msg("http shutdown")
	}
	p.Close(sctx)
	log.Info().Msg("stopped")
	return nil
}
