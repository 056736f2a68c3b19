// Command benchmarks measures python-executor in warm mode (the pool) against
// cold mode (a fresh interpreter per request, the seed's way) and against the
// unsafe floor (floor.py: one warm interpreter exec'ing every script, no
// isolation, what a user would build instead), side by side in one run so the
// machine's noise cancels.
//
// It builds the server, starts one warm and one cold server and the floor,
// and drives each of the seed's scripts at each concurrency for a fixed
// duration with vegeta, alternating between them. It prints one markdown
// table: latency percentiles, throughput, errors and CPU per request for each
// and the ratios, then start-up time and memory.
//
//	go run ./benchmarks                     # full run (see benchmarks/README.md)
//	go run ./benchmarks -duration 1s        # the smoke run CI does
package main

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

func main() {
	duration := flag.Duration("duration", 5*time.Second, "how long each script is driven at each concurrency, per mode")
	concurrency := flag.String("concurrency", "1,4,8", "comma-separated concurrencies")
	only := flag.String("scripts", "", "comma-separated script names to run (default all)")
	poolSize := flag.Int("pool-size", 0, "warm pool size (0 = the server's default)")
	binary := flag.String("binary", "", "server binary (default: build ./cmd/server)")
	flag.StringVar(&serverArgs, "server-args", "", "extra flags for both servers, space-separated (e.g. --python-root /srv/trixie)")
	flag.StringVar(&floorPython, "floor-python", "/usr/bin/python3", "interpreter of the unsafe floor")
	flag.StringVar(&floorRoot, "floor-root", "", "run the floor's interpreter chrooted in this tree (another Python, e.g. a debootstrapped trixie)")
	flag.Parse()
	if err := run(*duration, *concurrency, *only, *poolSize, *binary); err != nil {
		fmt.Fprintln(os.Stderr, "benchmarks:", err)
		os.Exit(1)
	}
}

func run(duration time.Duration, concurrency, only string, poolSize int, binary string) error {
	var concs []int
	for _, c := range strings.Split(concurrency, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			return fmt.Errorf("bad concurrency %q", c)
		}
		concs = append(concs, n)
	}
	scripts := seedScripts
	if only != "" {
		scripts = nil
		for _, s := range seedScripts {
			if strings.Contains(","+only+",", ","+s.name+",") {
				scripts = append(scripts, s)
			}
		}
	}
	if binary == "" {
		dir, err := os.MkdirTemp("", "bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		binary = filepath.Join(dir, "python-executor")
		build := exec.Command("go", "build", "-trimpath", "-o", binary, "./cmd/server")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building server: %w", err)
		}
	}
	maxConc := concs[len(concs)-1]
	warmArgs := []string{"--queue-size", "256"}
	if poolSize > 0 {
		warmArgs = append(warmArgs, "--pool-size", strconv.Itoa(poolSize))
	}
	warm, err := startServer(binary, warmArgs...)
	if err != nil {
		return err
	}
	defer warm.stop()
	cold, err := startServer(binary, "--pool-size", "0", "--cold-concurrency", strconv.Itoa(maxConc), "--queue-size", "256", "--queue-timeout", "60s")
	if err != nil {
		return err
	}
	defer cold.stop()
	floor, err := startFloor()
	if err != nil {
		return err
	}
	defer floor.stop()
	time.Sleep(500 * time.Millisecond) // let the pool settle before measuring memory
	warmPSS, workers := treePSS(warm.cmd.Process.Pid), warm.workers
	serverPSS := pss(warm.cmd.Process.Pid)

	fmt.Printf("Machine: %d CPUs, %s/%s, %s. Each cell: %s of closed-loop load.\n\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, cpuModel(), duration)
	fmt.Println("| script | conc | warm p50 | warm p90 | warm p99 | warm req/s | warm err | warm CPU/req | cold p50 | cold p90 | cold p99 | cold req/s | cold err | cold CPU/req | p50 cold/warm | req/s warm/cold | floor p50 | floor req/s | floor err | floor CPU/req | CPU/req warm/floor |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, sc := range scripts {
		for _, c := range concs {
			w := attack(warm, sc, c, duration)
			k := attack(cold, sc, c, duration)
			f := attack(floor, sc, c, duration)
			fmt.Printf("| %s | %d | %s | %s | %s | %.1f | %d | %s | %s | %s | %s | %.1f | %d | %s | %.0fx | %.1fx | %s | %.1f | %d | %s | %.0fx |\n",
				sc.name, c, ms(w.p50), ms(w.p90), ms(w.p99), w.rps, w.errors, ms(w.cpuPerReq),
				ms(k.p50), ms(k.p90), ms(k.p99), k.rps, k.errors, ms(k.cpuPerReq),
				ratio(float64(k.p50), float64(w.p50)), ratio(w.rps, k.rps),
				ms(f.p50), f.rps, f.errors, ms(f.cpuPerReq), ratio(float64(w.cpuPerReq), float64(f.cpuPerReq)))
		}
	}
	fmt.Printf("\nOpen loop at %d req/s (uncontended latency; closed-loop rows above saturate the CPUs):\n\n", openRate)
	fmt.Println("| script | warm p50 | warm p90 | warm p99 | warm CPU/req | warm err |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	for _, sc := range scripts {
		if sc.name != "hello" && sc.name != "pandas+numpy" && sc.name != "pandas" {
			continue
		}
		w := attackAt(warm, sc, maxConc, duration, vegeta.Rate{Freq: openRate, Per: time.Second})
		fmt.Printf("| %s | %s | %s | %s | %s | %d |\n", sc.name, ms(w.p50), ms(w.p90), ms(w.p99), ms(w.cpuPerReq), w.errors)
	}
	fmt.Printf("\nStart to healthy: warm %s (pool of %d), cold %s.\n", ms(warm.startup), workers, ms(cold.startup))
	fmt.Printf("Memory (PSS, shared pages counted once), warm server idle: %.1f MiB in all, server %.1f MiB, %.1f MiB per worker (%d workers).\n",
		mib(warmPSS), mib(serverPSS), mib(warmPSS-serverPSS)/float64(max(workers, 1)), workers)
	return nil
}

type script struct {
	name, src string
	ok        bool // a result is expected, not an error
}

var seedScripts = []script{
	{"hello", "def main():\n    return {\"message\": \"Hello, World!\", \"value\": 42}", true},
	{"print", "def main():\n    print(\"Starting calculation...\")\n    result = 10 * 5\n    print(f\"Result is {result}\")\n    return {\"answer\": result}", true},
	{"numpy", "import numpy as np\n\ndef main():\n    arr = np.array([1, 2, 3, 4, 5])\n    return {\n        \"sum\": int(np.sum(arr)),\n        \"mean\": float(np.mean(arr)),\n        \"max\": int(np.max(arr))\n    }", true},
	{"pandas", "import pandas as pd\n\ndef main():\n    df = pd.DataFrame({\n        \"name\": [\"Alice\", \"Bob\", \"Charlie\"],\n        \"age\": [25, 30, 35]\n    })\n    return {\n        \"rows\": len(df),\n        \"columns\": list(df.columns),\n        \"mean_age\": float(df[\"age\"].mean())\n    }", true},
	{"pandas+numpy", "import pandas as pd\nimport numpy as np\n\ndef main():\n    print(\"Creating dataset...\")\n    data = pd.DataFrame({\n        \"x\": np.arange(1, 11),\n        \"y\": np.arange(1, 11) ** 2\n    })\n    print(f\"Dataset has {len(data)} rows\")\n    \n    return {\n        \"x_sum\": int(data[\"x\"].sum()),\n        \"y_sum\": int(data[\"y\"].sum()),\n        \"correlation\": float(data[\"x\"].corr(data[\"y\"]))\n    }", true},
	{"fibonacci", "import math\n\ndef main():\n    print(\"Calculating fibonacci...\")\n    def fib(n):\n        if n <= 1:\n            return n\n        return fib(n-1) + fib(n-2)\n    \n    result = fib(10)\n    print(f\"Fibonacci(10) = {result}\")\n    return {\"fibonacci_10\": result}", true},
	{"no-main", "def other_function():\n    return {\"value\": 42}", false},
	{"syntax-error", "def main():\n    return {invalid syntax here}", false},
	{"not-serializable", "class MyClass:\n    pass\n\ndef main():\n    return MyClass()", false},
}

type stats struct {
	p50, p90, p99, cpuPerReq time.Duration
	rps                      float64
	errors                   int
}

// openRate is the request rate of the open-loop rows.
const openRate = 20

// attack drives one server with c concurrent clients, each sending its next
// request as soon as the last is answered, for d.
func attack(s *server, sc script, c int, d time.Duration) stats {
	return attackAt(s, sc, c, d, vegeta.ConstantPacer{})
}

// attackAt drives one server at the pacer's rate with at most c requests in
// flight for d, and reports.
func attackAt(s *server, sc script, c int, d time.Duration, pacer vegeta.Pacer) stats {
	body, _ := json.Marshal(map[string]string{"script": sc.src})
	targeter := vegeta.NewStaticTargeter(vegeta.Target{
		Method: "POST", URL: s.url + "/execute", Body: body,
		Header: http.Header{"Content-Type": []string{"application/json"}},
	})
	attacker := vegeta.NewAttacker(vegeta.Workers(uint64(c)), vegeta.MaxWorkers(uint64(c)),
		vegeta.Connections(c), vegeta.Timeout(90*time.Second), vegeta.KeepAlive(true))
	want := `"error"`
	if sc.ok {
		want = `"result"`
	}
	cpu0 := s.cpu()
	var m vegeta.Metrics
	errors := 0
	for r := range attacker.Attack(targeter, pacer, d, sc.name) {
		m.Add(r)
		if r.Code != 200 || r.Error != "" || !strings.Contains(string(r.Body), want) {
			errors++
		}
	}
	m.Close()
	cpu := s.cpu() - cpu0
	st := stats{p50: m.Latencies.P50, p90: m.Latencies.P90, p99: m.Latencies.P99, rps: m.Throughput, errors: errors}
	if m.Requests > 0 {
		st.cpuPerReq = cpu / time.Duration(m.Requests)
	}
	return st
}

type server struct {
	cmd     *exec.Cmd
	url     string
	startup time.Duration
	cgroup  string // cpuacct cgroup holding the server and all its workers, if any
	workers int
}

// cpu returns the CPU time the server and every process it started (reaped
// or not) have used: from a cgroup v1 cpuacct group when one could be made
// (root), else from /proc, which misses processes that died unreaped.
func (s *server) cpu() time.Duration {
	if s.cgroup != "" {
		b, err := os.ReadFile(filepath.Join(s.cgroup, "cpuacct.usage"))
		if n, perr := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && perr == nil {
			return time.Duration(n)
		}
	}
	return treeCPU(s.cmd.Process.Pid)
}

var cgroups int

// newCgroup makes a cpuacct cgroup, or returns "" where it cannot.
func newCgroup() string {
	cgroups++
	dir := fmt.Sprintf("/sys/fs/cgroup/cpuacct/python-executor-bench-%d-%d", os.Getpid(), cgroups)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return ""
	}
	return dir
}

func startServer(binary string, args ...string) (*server, error) {
	start := time.Now()
	cg := newCgroup()
	// Worker uids of its own (used when root): a root server sweeps its
	// range, which would kill the workers of another server sharing it.
	uid := strconv.Itoa(1_700_000_000 + (os.Getpid()%1024)*1024 + cgroups*64)
	args = append(args, "--worker-uid", uid, "--worker-gid", uid, "--worker-uids", "64")
	args = append(args, strings.Fields(serverArgs)...)
	cmd := exec.Command(binary, append([]string{"--addr", "127.0.0.1:0"}, args...)...)
	if cg != "" {
		// Enter the cgroup before exec, so every worker is born inside it.
		cmd = exec.Command("/bin/sh", append([]string{"-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, cg, binary, "--addr", "127.0.0.1:0"}, args...)...)
	}
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	for _, k := range []string{"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"} {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var ev struct{ Message, Addr string }
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Message == "listening" {
				addr <- ev.Addr
			}
		}
	}()
	select {
	case a := <-addr:
		s := &server{cmd: cmd, url: "http://" + a, cgroup: cg}
		for { // healthy = /health answers 200
			resp, err := http.Get(s.url + "/health")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			time.Sleep(time.Millisecond)
		}
		s.startup = time.Since(start)
		var info struct {
			PoolSize int `json:"pool_size"`
		}
		if resp, err := http.Get(s.url + "/info"); err == nil {
			json.NewDecoder(resp.Body).Decode(&info)
			resp.Body.Close()
		}
		s.workers = info.PoolSize
		return s, nil
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		return nil, fmt.Errorf("server %v did not start", args)
	}
}

//go:embed floor.py
var floorSource string

var floorPython, floorRoot, serverArgs string

// startFloor starts the unsafe floor (floor.py) in a cgroup of its own.
func startFloor() (*server, error) {
	start := time.Now()
	cg := newCgroup()
	argv := []string{floorPython, "-c", floorSource}
	if floorRoot != "" {
		argv = append([]string{"/usr/sbin/chroot", floorRoot}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	if cg != "" {
		cmd = exec.Command("/bin/sh", append([]string{"-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, cg}, argv...)...)
	}
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("the floor did not start: %q %v", line, err)
	}
	return &server{cmd: cmd, url: "http://" + addr, cgroup: cg, startup: time.Since(start)}, nil
}

func (s *server) stop() {
	s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
	}
	if s.cgroup != "" {
		os.Remove(s.cgroup)
	}
}

// tree returns pid and all its descendants.
func tree(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := statFields(p); len(f) > 1 {
			pp, _ := strconv.Atoi(f[1])
			children[pp] = append(children[pp], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// statFields returns /proc/pid/stat from field 3 (state) on.
func statFields(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
}

// treeCPU is the CPU time used by the tree so far, reaped descendants
// included (cutime/cstime).
func treeCPU(pid int) time.Duration {
	var ticks int64
	for _, p := range tree(pid) {
		f := statFields(p)
		if len(f) < 15 {
			continue
		}
		for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
			n, _ := strconv.ParseInt(f[i], 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

// treePSS sums the proportional set size of the tree: shared pages are
// divided among the processes that share them, so they count once in all.
func treePSS(pid int) int64 {
	var total int64
	for _, p := range tree(pid) {
		total += pss(p)
	}
	return total
}

func pss(pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) >= 2 && fields[0] == "Pss:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) + " ms" }
func mib(b int64) float64       { return float64(b) / (1 << 20) }

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
