// Command python-executor serves POST /execute: it runs a Python script's
// main() in a sandboxed, pre-warmed worker and returns its value and stdout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "python-executor: configuration:", err)
		os.Exit(2)
	}
	// Non-dumpable: a process of the same uid (a job, at basic level as a
	// non-root server) cannot read this one's memory, environment or fds
	// through /proc, nor ptrace it.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "python-executor: prctl(PR_SET_DUMPABLE, 0):", err)
		os.Exit(1)
	}
	// As root, make the server and (by inheritance) every worker template
	// the kernel's last choice when memory runs out, in a worker's memory
	// cgroup or on the host: job processes raise theirs to 1000, so a job
	// over its limit is killed, not the template that would answer for it.
	// (Lowering needs root; without root there is no memory cgroup either.)
	if os.Geteuid() == 0 {
		os.WriteFile("/proc/self/oom_score_adj", []byte("-900"), 0)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log := zerolog.New(os.Stderr).With().Timestamp().Logger()
	if err := run(ctx, cfg, log); err != nil {
		log.Error().Err(err).Msg("python-executor stopped")
		os.Exit(1)
	}
}
