package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/python-executor/python-executor/internal/sandbox"
	"github.com/python-executor/python-executor/internal/worker"
)

// Config is every knob of the server. Each has a flag and an environment
// variable (PYEXEC_ plus the flag name in upper case with _ for -); a flag on
// the command line wins over the environment. PORT (set by Cloud Run) is
// honoured when --addr is not given.
type Config struct {
	Addr              string
	PoolSize          int
	ColdConcurrency   int
	QueueSize         int
	QueueTimeout      time.Duration
	DefaultTimeout    time.Duration
	MaxTimeout        time.Duration
	MaxScriptBytes    int64
	StdoutLimitBytes  int64
	ResultLimitBytes  int64
	MemoryMB          int64
	ScratchMB         int64
	MaxProcs          int
	MaxOpenFiles      int
	Python            string
	PythonRoot        string
	Preload           string
	Isolation         string
	RequireIsolation  string
	WorkerUID         int
	WorkerGID         int
	WorkerUIDs        int
	PassEnv           string
	StartTimeout      time.Duration
	ShutdownGrace     time.Duration
	LogLevel          string
	InsecureSharedUID bool
	APIKeys           string
	APIKeysFile       string
	PerKeyConc        int
	MaxFiles          int
	MaxFilesBytes     int64
	Playground        bool
}

func parseConfig(args []string, getenv func(string) string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("python-executor", flag.ContinueOnError)
	addr := ":8080"
	if p := getenv("PORT"); p != "" {
		addr = ":" + p
	}
	fs.StringVar(&c.Addr, "addr", addr, "listen address (default from PORT when set)")
	fs.IntVar(&c.PoolSize, "pool-size", max(2, runtime.NumCPU()), "warm workers, and so concurrent jobs; 0 = cold mode (fresh interpreter per job)")
	fs.IntVar(&c.ColdConcurrency, "cold-concurrency", max(2, runtime.NumCPU()), "concurrent jobs in cold mode")
	fs.IntVar(&c.QueueSize, "queue-size", 64, "requests that may wait for a worker; more get 503")
	fs.DurationVar(&c.QueueTimeout, "queue-timeout", 10*time.Second, "longest wait for a worker before 503")
	fs.DurationVar(&c.DefaultTimeout, "timeout", 30*time.Second, "job time limit when the request gives none")
	fs.DurationVar(&c.MaxTimeout, "max-timeout", 30*time.Second, "largest time limit a request may ask for")
	fs.Int64Var(&c.MaxScriptBytes, "max-script-bytes", 1<<20, "largest script accepted (413 above)")
	fs.Int64Var(&c.StdoutLimitBytes, "stdout-limit-bytes", 1<<20, "stdout kept per job; the rest is dropped and the response says so")
	fs.Int64Var(&c.ResultLimitBytes, "result-limit-bytes", 1<<20, "largest serialized result")
	fs.Int64Var(&c.MemoryMB, "memory-mb", 1024, "memory a job may allocate on top of the warm interpreter (MiB)")
	fs.Int64Var(&c.ScratchMB, "scratch-mb", 64, "size of a job's /tmp and largest file it may write (MiB)")
	fs.IntVar(&c.MaxProcs, "max-procs", 64, "processes and threads per job")
	fs.IntVar(&c.MaxOpenFiles, "max-open-files", 256, "open files per job process")
	fs.StringVar(&c.Python, "python", "/usr/bin/python3", "Python interpreter (absolute path under /usr)")
	fs.StringVar(&c.PythonRoot, "python-root", "", "root filesystem the jobs run in, instead of the host's /usr, /lib* and /etc (a Debian tree made by scripts/python-root.sh); --python is then a path inside it; needs namespaces isolation")
	fs.StringVar(&c.Preload, "preload", "numpy,pandas", "comma-separated modules each warm template imports before forking (matplotlib: pyplot with the Agg backend); \"none\" for none")
	fs.StringVar(&c.Isolation, "isolation", "auto", "auto, namespaces or basic")
	fs.StringVar(&c.RequireIsolation, "require-isolation", "", "refuse to start without these protections, comma-separated: basic or namespaces, and landlock (ABI 6 or later)")
	fs.IntVar(&c.WorkerUID, "worker-uid", 2_000_000_000, "first uid of the workers when the server runs as root (worker i runs as worker-uid+i)")
	fs.IntVar(&c.WorkerGID, "worker-gid", 2_000_000_000, "first gid of the workers when the server runs as root")
	fs.IntVar(&c.WorkerUIDs, "worker-uids", 256, "how many uids from worker-uid the workers may use (1 = all share worker-uid)")
	fs.StringVar(&c.PassEnv, "pass-env", "OPENBLAS_CORETYPE,OPENBLAS_L2_SIZE", "comma-separated server variables passed to workers unchanged")
	fs.DurationVar(&c.StartTimeout, "start-timeout", 30*time.Second, "longest a worker may take to start")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", 25*time.Second, "on SIGTERM, how long running and queued jobs may finish")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error (debug logs scripts)")
	fs.BoolVar(&c.InsecureSharedUID, "insecure-shared-uid", false, "at basic level, run a non-root server without Landlock's signal scoping (ABI 6) anyway: its jobs can then stop or kill it")
	fs.StringVar(&c.APIKeys, "api-keys", "", "comma-separated API keys POST /execute requires as Authorization: Bearer; from the environment only (a command line is readable by every process)")
	fs.StringVar(&c.APIKeysFile, "api-keys-file", "", "file with one API key per line (# comments allowed)")
	fs.IntVar(&c.PerKeyConc, "per-key-concurrency", 0, "jobs one API key may run at once (0 = no limit)")
	fs.IntVar(&c.MaxFiles, "max-files", 100, "POST /v1/execute: files a request may send, and files and images a job may return")
	fs.Int64Var(&c.MaxFilesBytes, "max-files-bytes", 10<<20, "POST /v1/execute: bytes of the files a request sends together, and of the files and images a job returns together")
	fs.BoolVar(&c.Playground, "playground", true, "serve the playground page at GET / (false: / is a 404 like any unknown path)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: python-executor [flags]\n\nEvery flag can also be set as PYEXEC_<FLAG> in the environment (PYEXEC_POOL_SIZE=4).\n\n")
		fs.PrintDefaults()
	}
	// Environment first, so that flags given on the command line win.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := "PYEXEC_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		f.Usage += " [$" + name + "]"
		if v := getenv(name); v != "" {
			if err := f.Value.Set(v); err != nil && envErr == nil {
				envErr = fmt.Errorf("%s=%q: %w", name, v, err)
			}
		}
	})
	if envErr != nil {
		return c, envErr
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var onCommandLine error
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "api-keys" {
			onCommandLine = errors.New("--api-keys on the command line is readable by every process on the host " +
				"(/proc/<pid>/cmdline), jobs included where Landlock is missing: pass the keys in $PYEXEC_API_KEYS or --api-keys-file")
		}
	})
	if onCommandLine != nil {
		return c, onCommandLine
	}
	return c, c.validate()
}

func (c Config) validate() error {
	var errs []error
	check := func(ok bool, format string, a ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, a...))
		}
	}
	check(c.PoolSize >= 0, "pool-size must be >= 0")
	check(c.ColdConcurrency > 0, "cold-concurrency must be > 0")
	check(c.QueueSize > 0, "queue-size must be > 0")
	check(c.QueueTimeout > 0, "queue-timeout must be > 0")
	check(c.MaxTimeout > 0, "max-timeout must be > 0")
	check(c.DefaultTimeout > 0 && c.DefaultTimeout <= c.MaxTimeout, "timeout must be > 0 and <= max-timeout")
	check(c.MaxScriptBytes > 0, "max-script-bytes must be > 0")
	check(c.StdoutLimitBytes > 0 && c.StdoutLimitBytes <= 8<<20, "stdout-limit-bytes must be in 1..8MiB")
	check(c.ResultLimitBytes > 0 && c.ResultLimitBytes <= 32<<20, "result-limit-bytes must be in 1..32MiB")
	check(c.MemoryMB > 0, "memory-mb must be > 0")
	check(c.ScratchMB > 0, "scratch-mb must be > 0")
	check(c.MaxProcs > 0, "max-procs must be > 0")
	check(c.MaxOpenFiles >= 16, "max-open-files must be >= 16")
	check(strings.HasPrefix(c.Python, "/"), "python must be an absolute path")
	check(c.Isolation == "auto" || c.Isolation == "namespaces" || c.Isolation == "basic", "isolation must be auto, namespaces or basic")
	_, _, reqErr := c.requirements()
	check(reqErr == nil, "require-isolation: %v", reqErr)
	check(c.WorkerUID > 0 && c.WorkerGID > 0, "worker-uid and worker-gid must not be 0")
	check(c.WorkerUIDs > 0, "worker-uids must be > 0")
	check(int64(c.WorkerUID)+int64(c.WorkerUIDs) <= 1<<31 && int64(c.WorkerGID)+int64(c.WorkerUIDs) <= 1<<31,
		"worker-uid and worker-gid plus worker-uids must stay below 2^31 (ids some tools read as signed)")
	check(c.PerKeyConc >= 0, "per-key-concurrency must be >= 0")
	check(c.MaxFiles >= 0 && c.MaxFiles <= 10000, "max-files must be in 0..10000")
	check(c.MaxFilesBytes >= 0 && c.MaxFilesBytes <= 256<<20, "max-files-bytes must be in 0..256MiB")
	_, err := c.preload()
	check(err == nil, "preload: %v", err)
	if c.PythonRoot != "" {
		check(filepath.IsAbs(c.PythonRoot), "python-root must be an absolute path")
		check(c.Isolation != "basic", "python-root needs namespaces isolation, and isolation is basic")
		st, err := os.Stat(c.PythonRoot)
		check(err == nil && st.IsDir(), "python-root %s is not a directory", c.PythonRoot)
	}
	_, err = os.Stat(c.pythonOnHost())
	check(err == nil, "python %s: %v", c.pythonOnHost(), err)
	return errors.Join(errs...)
}

// requirements parses --require-isolation: a level and whether Landlock is
// required.
func (c Config) requirements() (level sandbox.Level, landlock bool, err error) {
	for _, r := range strings.Split(c.RequireIsolation, ",") {
		switch r = strings.TrimSpace(r); r {
		case "":
		case "landlock":
			landlock = true
		default:
			l, err := sandbox.ParseLevel(r)
			if err != nil {
				return 0, false, fmt.Errorf("%q: want basic, namespaces or landlock", r)
			}
			level = max(level, l)
		}
	}
	return level, landlock, nil
}

// pythonOnHost is where the host sees the jobs' interpreter.
func (c Config) pythonOnHost() string {
	if c.PythonRoot == "" {
		return c.Python
	}
	return filepath.Join(c.PythonRoot, c.Python)
}

// preload parses --preload.
func (c Config) preload() ([]string, error) { return worker.ParsePreload(c.Preload) }

// apiKeys returns the configured keys from --api-keys and --api-keys-file.
func (c Config) apiKeys() ([]string, error) {
	var keys []string
	for _, k := range strings.Split(c.APIKeys, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	if c.APIKeysFile != "" {
		b, err := os.ReadFile(c.APIKeysFile)
		if err != nil {
			return nil, fmt.Errorf("reading API keys: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				keys = append(keys, line)
			}
		}
		if len(keys) == 0 {
			return nil, fmt.Errorf("API keys file %s holds no key", c.APIKeysFile)
		}
	}
	return keys, nil
}
