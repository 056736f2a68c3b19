package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBadRequests(t *testing.T) {
	big := script("def main():\n    return 1\n#" + strings.Repeat("x", 1<<20))
	tests := []struct {
		name, method, path, body string
		status                   int
		errPrefix                string
	}{
		{"empty body", "POST", "/execute", "", 400, "Empty request body"},
		{"invalid json", "POST", "/execute", `{"script": `, 400, "Invalid JSON"},
		{"not json at all", "POST", "/execute", "def main():\n    return 1", 400, "Invalid JSON in request body: it is not JSON at all"},
		{"json array", "POST", "/execute", `[{"script": "def main(): return 1"}]`, 400, "Request body must be a JSON object"},
		{"json string", "POST", "/execute", `"def main(): return 1"`, 400, "Request body must be a JSON object"},
		{"missing script", "POST", "/execute", `{"code": "x"}`, 400, `Missing required field "script"`},
		{"null script", "POST", "/execute", `{"script": null}`, 400, `Missing required field "script"`},
		{"script not a string", "POST", "/execute", `{"script": 42}`, 400, `Field "script" must be a string`},
		{"timeout not a number", "POST", "/execute", `{"script": "def main(): return 1", "timeout": "5"}`, 400, `Field "timeout" must be a number`},
		{"timeout zero", "POST", "/execute", `{"script": "def main(): return 1", "timeout": 0}`, 400, `Field "timeout" must be more than 0 and at most 30 seconds`},
		{"timeout above max", "POST", "/execute", `{"script": "def main(): return 1", "timeout": 31}`, 400, `Field "timeout" must be more than 0 and at most 30 seconds`},
		{"script too large", "POST", "/execute", big, 413, "Script too large: 1048602 bytes exceeds the script limit of 1048576 bytes"},
		{"body too large", "POST", "/execute", `{"script": "` + strings.Repeat(`\u0000`, 2<<20) + `"}`, 413, "Request too large"},
		{"wrong method", "GET", "/execute", "", 405, "Method not allowed: GET /execute"},
		{"wrong method on health", "POST", "/health", "", 405, "Method not allowed"},
		{"unknown path", "GET", "/nope", "", 404, "Not found: /nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, shared.URL+tt.path, strings.NewReader(tt.body))
			r := do(t, req)
			msg, _ := r.Body["error"].(string)
			if r.Status != tt.status || !strings.HasPrefix(msg, tt.errPrefix) || r.Body["stdout"] != "" {
				t.Errorf("got %d %.300s, want %d with error starting %q and stdout \"\"", r.Status, r.Raw, tt.status, tt.errPrefix)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
}

func TestScriptOutcomes(t *testing.T) {
	tests := []struct {
		name, body string
		want       map[string]any
		outcome    string
	}{
		{"exception in main keeps stdout", script("def main():\n    print('before')\n    raise ValueError('bad value')"),
			map[string]any{"error": "ValueError: bad value", "stdout": "before"}, "exception"},
		{"exception at import", script("print('top')\nimport nosuchmodule\ndef main(): pass"),
			map[string]any{"error": "ModuleNotFoundError: No module named 'nosuchmodule'", "stdout": "top"}, "exception"},
		{"exception without message", script("def main():\n    raise KeyboardInterrupt"),
			map[string]any{"error": "KeyboardInterrupt", "stdout": ""}, "exception"},
		{"sys.exit", script("import sys\ndef main():\n    sys.exit(3)"),
			map[string]any{"error": "SystemExit: script called sys.exit(3)", "stdout": ""}, "exception"},
		{"os._exit", script("import os\ndef main():\n    print('bye')\n    os._exit(4)"),
			map[string]any{"error": "The script exited with code 4 before main() returned (os._exit or a C extension called exit)", "stdout": "bye"}, "exited"},
		{"segfault", script("import ctypes\ndef main():\n    ctypes.string_at(0)"),
			map[string]any{"error": "The script crashed with a segmentation fault (SIGSEGV); a C extension, ctypes or a stack overflow from deep recursion can cause this", "stdout": ""}, "crashed"},
		{"EAGAIN names the limits that answer it, not that one was hit", script("import os\ndef main():\n    r, w = os.pipe()\n    os.set_blocking(r, False)\n    os.read(r, 1)"),
			map[string]any{"error": "BlockingIOError: [Errno 11] Resource temporarily unavailable (from starting a process or thread: a job may run at most 64 processes and threads; from a timer or a queued signal: at most 256 of those)", "stdout": ""}, "exception"},
		{"main not callable", script("main = 5"),
			map[string]any{"error": "Script must contain a main() function", "stdout": ""}, "missing_main"},
		{"main returns None", script("def main():\n    pass"),
			map[string]any{"result": nil, "stdout": ""}, "ok"},
		{"nan and infinity become null", script("import numpy as np\ndef main():\n    return [float('nan'), float('inf'), -np.inf, np.float64('nan'), 1.5]"),
			map[string]any{"result": []any{nil, nil, nil, nil, 1.5}, "stdout": ""}, "ok"},
		{"numpy and pandas values", script("import numpy as np, pandas as pd\ndef main():\n    df = pd.DataFrame({'a': [1, 2], 'b': ['x', None]})\n    return {'i': np.int64(5), 'f': np.float32(0.5), 'b': np.bool_(True), 'arr': np.arange(3), 'm': np.eye(2, dtype=int), 'df': df, 's': df['a'], 'ts': pd.Timestamp('2024-01-02T03:04:05'), 'idx': df.columns, 'set': {1}, 'tuple': (1, 2)}"),
			map[string]any{"result": map[string]any{"i": 5.0, "f": 0.5, "b": true, "arr": []any{0.0, 1.0, 2.0}, "m": []any{[]any{1.0, 0.0}, []any{0.0, 1.0}},
				"df": []any{map[string]any{"a": 1.0, "b": "x"}, map[string]any{"a": 2.0, "b": nil}}, "s": []any{1.0, 2.0},
				"ts": "2024-01-02T03:04:05", "idx": []any{"a", "b"}, "set": []any{1.0}, "tuple": []any{1.0, 2.0}}, "stdout": ""}, "ok"},
		{"lone surrogate stays valid JSON", script("def main():\n    return '\\ud800x'"),
			map[string]any{"result": "\ufffdx", "stdout": ""}, "ok"},
		{"unicode", script("def main():\n    print('héllo ✓ 🐍')\n    return {'k': 'värde ✓'}"),
			map[string]any{"result": map[string]any{"k": "värde ✓"}, "stdout": "héllo ✓ 🐍"}, "ok"},
		{"C-level writes to fd 1 are captured", script("import os\ndef main():\n    print('py', flush=True)\n    os.write(1, b'raw\\n')\n    os.system('echo from-child')\n    return 1"),
			map[string]any{"result": 1.0, "stdout": "py\nraw\nfrom-child"}, "ok"},
		{"stderr is not stdout", script("import sys\ndef main():\n    print('err', file=sys.stderr)\n    return 1"),
			map[string]any{"result": 1.0, "stdout": ""}, "ok"},
		{"if __name__ guard does not run main twice", script("def main():\n    print('once')\n    return 1\nif __name__ == '__main__':\n    main()"),
			map[string]any{"result": 1.0, "stdout": "once"}, "ok"},
		{"timeout names itself", scriptWithTimeout("import time\ndef main():\n    print('started')\n    time.sleep(10)", 0.5),
			map[string]any{"error": "Time limit exceeded: the script ran for more than 500ms", "stdout": "started"}, "timeout"},
		{"serialization runs under the time limit", scriptWithTimeout("class Slow:\n    def __iter__(self):\n        while True: yield 1\ndef main():\n    return list(Slow())", 0.5),
			map[string]any{"error": "Time limit exceeded: the script ran for more than 500ms", "stdout": ""}, "timeout"},
		// The result's own bytes count, as JSON: its quotes, not the frame
		// around it (outside attack round 12 found a result exactly at the
		// limit refused, counted with the frame's 12 bytes).
		{"result over the limit", script("def main():\n    return 'x' * (2 << 20)"),
			map[string]any{"error": "Result too large: 2097154 bytes exceeds the result limit of 1048576 bytes", "stdout": ""}, "result_limit"},
		{"result exactly at the limit", script("def main():\n    return 'x' * ((1 << 20) - 2)"),
			map[string]any{"result": strings.Repeat("x", 1<<20-2), "stdout": ""}, "ok"},
		{"result one byte over the limit", script("def main():\n    return 'x' * ((1 << 20) - 1)"),
			map[string]any{"error": "Result too large: 1048577 bytes exceeds the result limit of 1048576 bytes", "stdout": ""}, "result_limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := shared.execute(t, tt.body)
			if diff := cmp.Diff(tt.want, r.Body); r.Status != 200 || diff != "" {
				t.Errorf("status %d, body diff (-want +got):\n%s", r.Status, diff)
			}
			if got := r.Header.Get("X-Execution-Outcome"); got != tt.outcome {
				t.Errorf("X-Execution-Outcome = %q, want %q", got, tt.outcome)
			}
		})
	}
}

func TestStdoutTruncated(t *testing.T) {
	r := shared.execute(t, script("import sys\ndef main():\n    for i in range(300000):\n        sys.stdout.write('0123456789')\n    return 'done'"))
	out, _ := r.Body["stdout"].(string)
	if r.Status != 200 || r.Body["result"] != "done" || r.Body["stdout_truncated"] != true || len(out) != 1<<20 {
		t.Errorf("got %d result=%v truncated=%v len(stdout)=%d, want the result, truncated=true and 1 MiB of stdout",
			r.Status, r.Body["result"], r.Body["stdout_truncated"], len(out))
	}
	if got := r.Header.Get("X-Stdout-Bytes"); got != "3000000" {
		t.Errorf("X-Stdout-Bytes = %q, want 3000000", got)
	}
}

func TestConcurrentRequestsDoNotCrossTalk(t *testing.T) {
	// A queue timeout no loaded CI machine reaches: this test is about
	// answers, not speed.
	s := startServer(t, "--pool-size", "2", "--queue-timeout", "120s")
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := fmt.Sprintf("import numpy as np\nN = %d\ndef main():\n    print('request', N)\n    return {'n': N, 'sq': int(np.int64(N) ** 2)}", i)
			r := s.execute(t, script(src))
			want := map[string]any{"result": map[string]any{"n": float64(i), "sq": float64(i * i)}, "stdout": fmt.Sprintf("request %d", i)}
			if diff := cmp.Diff(want, r.Body); r.Status != 200 || diff != "" {
				t.Errorf("request %d: status %d, diff (-want +got):\n%s", i, r.Status, diff)
			}
		}()
	}
	wg.Wait()
}

// TestNoStateLeaksBetweenJobs: one job tampers with everything it can reach;
// a burst of jobs after it (on every worker) sees none of it.
func TestNoStateLeaksBetweenJobs(t *testing.T) {
	needNamespaces(t) // at basic level /tmp is the host's and /proc shows every process
	s := startServer(t, "--pool-size", "2")
	attack := `
import json, builtins, os, sys, subprocess, threading, time, ctypes, tempfile
import numpy
json.dumps = lambda *a, **k: "patched"
numpy.sum = lambda *a, **k: -1
builtins.LEAK = "global"
sys.modules["leaky"] = json
os.environ["LEAK"] = "env"
sys.addaudithook(lambda *a: None)
open(os.path.join(tempfile.gettempdir(), "leak.txt"), "w").write("file")
open("leak_cwd.txt", "w").write("file")
os.makedirs("/dev/shm/leakdir", exist_ok=True)
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
subprocess.Popen(["/bin/sleep", "60"], process_group=0)  # setsid is refused
if os.fork() == 0:
    os.setpgid(0, 0)
    time.sleep(60)
    os._exit(0)
buf = ctypes.create_string_buffer(b"secret-in-memory")
builtins.len = lambda x: -1  # last: threading itself needs len
def main():
    return "tampered"
`
	for range 2 { // once per worker
		if r := s.execute(t, script(attack)); r.Body["result"] != "tampered" {
			t.Fatalf("attack job: %s", r.Raw)
		}
	}
	check := `
import json, builtins, os, sys, threading, numpy, tempfile
def main():
    procs = [p for p in os.listdir("/proc") if p.isdigit()]
    return {
        "dumps": json.dumps([1]), "sum": int(numpy.sum([1, 2])), "len": len([1, 2]),
        "global": hasattr(builtins, "LEAK"), "module": "leaky" in sys.modules,
        "env": os.environ.get("LEAK"), "tmp": os.listdir(tempfile.gettempdir()), "cwd": os.listdir("."),
        "shm": os.listdir("/dev/shm"), "threads": threading.active_count(),
        "processes": len(procs),
    }
`
	want := map[string]any{"dumps": "[1]", "sum": 3.0, "len": 2.0, "global": false, "module": false, "env": nil,
		"tmp": []any{}, "cwd": []any{}, "shm": []any{}, "threads": 1.0, "processes": 4.0} // the template (pid 1), its zygote, its other waiting child, the job
	for i := range 10 {
		r := s.execute(t, script(check))
		if diff := cmp.Diff(map[string]any{"result": want, "stdout": ""}, r.Body); diff != "" {
			t.Errorf("job %d after the attack saw state (-want +got):\n%s", i, diff)
		}
	}
}

func TestClientDisconnectKillsJob(t *testing.T) {
	s := startServer(t, "--pool-size", "1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", s.URL+"/execute", strings.NewReader(script("import time\ndef main():\n    time.sleep(20)")))
	errc := make(chan error, 1)
	go func() {
		_, err := http.DefaultClient.Do(req)
		errc <- err
	}()
	waitFor(t, "the job to start", func() bool { return s.ready(t).Body["busy_workers"] == 1.0 })
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("request finished; want the client to give up")
	}
	// The template kills the job and keeps its worker: no worker is lost.
	waitFor(t, "the job to be killed", func() bool { return strings.Contains(s.logs.String(), `"error":"job cancelled`) })
	if r := s.execute(t, script("def main():\n    return 'next'")); r.Body["result"] != "next" {
		t.Errorf("next job: %s", r.Raw)
	}
	if strings.Contains(s.logs.String(), `"destroying worker"`) {
		t.Errorf("a cancelled job cost its worker: %s", grepLines(s.logs.String(), `"destroying worker"`))
	}
}

func TestQueueFullGives503(t *testing.T) {
	s := startServer(t, "--pool-size", "1", "--queue-size", "1", "--queue-timeout", "1s")
	slow := scriptWithTimeout("import time\ndef main():\n    time.sleep(6)\n    return 'slow'", 10)
	var wg sync.WaitGroup
	results := make(chan reply, 2)
	for i := range 2 { // one runs, one waits
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- s.execute(t, slow)
		}()
		if i == 0 {
			waitFor(t, "the first job to start", func() bool { return s.ready(t).Body["busy_workers"] == 1.0 })
		} else {
			waitFor(t, "the second job to queue", func() bool { return s.ready(t).Body["waiting"] == 1.0 })
		}
	}
	r := s.execute(t, script("def main():\n    return 1"))
	if r.Status != 503 || r.Header.Get("Retry-After") == "" || !strings.HasPrefix(r.Body["error"].(string), "Server busy") {
		t.Errorf("third request: %d %s (Retry-After %q), want 503 Server busy with Retry-After", r.Status, r.Raw, r.Header.Get("Retry-After"))
	}
	wg.Wait()
	close(results)
	var statuses []int
	for r := range results {
		statuses = append(statuses, r.Status)
	}
	// The queued one waited 1s for a worker busy for 6s: it times out, and
	// so finishes first.
	if diff := cmp.Diff([]int{503, 200}, statuses); diff != "" {
		t.Errorf("statuses of the running and the queued request (-want +got):\n%s", diff)
	}
}

func TestGracefulShutdownFinishesRunningJob(t *testing.T) {
	s, err := start("--pool-size", "1", "--shutdown-grace", "10s")
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan reply, 1)
	go func() {
		res <- s.execute(t, script("import time\ndef main():\n    time.sleep(1)\n    return 'finished'"))
	}()
	waitFor(t, "the job to start", func() bool { return s.ready(t).Body["busy_workers"] == 1.0 })
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if r := <-res; r.Status != 200 || r.Body["result"] != "finished" {
		t.Errorf("in-flight job during shutdown: %d %s", r.Status, r.Raw)
	}
}

func TestWorkersDieWithKilledServer(t *testing.T) {
	s, err := start("--pool-size", "2")
	if err != nil {
		t.Fatal(err)
	}
	go http.Post(s.URL+"/execute", "application/json", strings.NewReader(script("import time\ndef main():\n    time.sleep(30)")))
	waitFor(t, "the job to start", func() bool { return s.ready(t).Body["busy_workers"] == 1.0 })
	if len(s.workerPids()) == 0 {
		t.Fatal("found no worker processes to watch")
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	if err := s.noWorkersLeft(); err != nil {
		t.Fatal(err)
	}
}

func TestColdMode(t *testing.T) {
	s := startServer(t, "--pool-size", "0")
	r := s.execute(t, script("import pandas as pd\ndef main():\n    print('cold')\n    return {'rows': len(pd.DataFrame({'a': [1, 2]}))}"))
	if diff := cmp.Diff(map[string]any{"result": map[string]any{"rows": 2.0}, "stdout": "cold"}, r.Body); diff != "" {
		t.Errorf("cold mode (-want +got):\n%s", diff)
	}
	// Nothing is imported ahead in cold mode, and /info says so.
	req, _ := http.NewRequest("GET", s.URL+"/info", nil)
	py, _ := do(t, req).Body["python"].(map[string]any)
	if diff := cmp.Diff([]any{}, py["preload"]); diff != "" {
		t.Errorf("cold mode /info python.preload (-want +got):\n%s", diff)
	}
}

func TestReadyAndInfo(t *testing.T) {
	req, _ := http.NewRequest("GET", shared.URL+"/ready", nil)
	if r := do(t, req); r.Status != 200 || r.Body["status"] != "ready" {
		t.Errorf("GET /ready = %d %s", r.Status, r.Raw)
	}
	req, _ = http.NewRequest("GET", shared.URL+"/info", nil)
	r := do(t, req)
	// Where the host gives no user namespaces, the level is basic and the
	// reason a fixed phrase (the probe's own message is in the log).
	want := map[string]any{"isolation": "namespaces", "mode": "warm"}
	if r.Body["isolation"] == "basic" {
		want = map[string]any{"isolation": "basic", "mode": "warm", "isolation_reason": "user namespaces unavailable"}
	}
	got := map[string]any{"isolation": r.Body["isolation"], "mode": r.Body["mode"]}
	if reason, ok := r.Body["isolation_reason"]; ok {
		got["isolation_reason"] = reason
	}
	if diff := cmp.Diff(want, got); r.Status != 200 || diff != "" {
		t.Errorf("GET /info = %d, (-want +got):\n%s", r.Status, diff)
	}
	// The jobs' Python, as the probe template found it: the host's here.
	py, _ := r.Body["python"].(map[string]any)
	pkgs, _ := py["packages"].(map[string]any)
	if v, _ := py["version"].(string); !strings.HasPrefix(v, "3.") || pkgs["numpy"] == nil || pkgs["pandas"] == nil {
		t.Errorf("GET /info python = %v, want a 3.x version with numpy and pandas", r.Body["python"])
	}
	if diff := cmp.Diff([]any{"numpy", "pandas"}, py["preload"]); diff != "" {
		t.Errorf("GET /info python.preload (-want +got):\n%s", diff)
	}
}

func TestRequestID(t *testing.T) {
	req, _ := http.NewRequest("POST", shared.URL+"/execute", strings.NewReader(script("def main(): return 1")))
	req.Header.Set("X-Request-ID", "abc-123")
	if r := do(t, req); r.Header.Get("X-Request-ID") != "abc-123" {
		t.Errorf("X-Request-ID = %q, want the client's", r.Header.Get("X-Request-ID"))
	}
	req, _ = http.NewRequest("GET", shared.URL+"/health", nil)
	if r := do(t, req); len(r.Header.Get("X-Request-ID")) != 16 {
		t.Errorf("X-Request-ID = %q, want a generated one", r.Header.Get("X-Request-ID"))
	}
}

func TestRequiredIsolationFailsClosed(t *testing.T) {
	out, err := exec.Command(binary, "--isolation", "basic", "--require-isolation", "namespaces", "--addr", "127.0.0.1:0").CombinedOutput()
	var ee *exec.ExitError
	if !errorsAs(err, &ee) || !strings.Contains(string(out), "namespaces required, host gives basic") {
		t.Errorf("server with an unmet isolation requirement: %v\n%s", err, out)
	}
}

func TestBasicIsolationServes(t *testing.T) {
	s := startServer(t, "--pool-size", "1", "--isolation", "basic")
	r := s.execute(t, script("import os, numpy\ndef main():\n    print('basic')\n    return sorted(os.environ)"))
	want := []any{"HOME", "LANG", "LC_ALL", "MKL_NUM_THREADS", "MPLBACKEND", "MPLCONFIGDIR", "NUMEXPR_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PATH", "PYEXEC_TEST_MARK", "TMPDIR"}
	if diff := cmp.Diff(map[string]any{"result": want, "stdout": "basic"}, r.Body); diff != "" {
		t.Errorf("basic isolation (-want +got):\n%s", diff)
	}
	req, _ := http.NewRequest("GET", s.URL+"/info", nil)
	if r := do(t, req); r.Body["isolation"] != "basic" || r.Body["isolation_reason"] != "basic isolation configured" {
		t.Errorf("GET /info = %s, want isolation basic with the fixed reason", r.Raw)
	}
}

func TestCPUHogDoesNotDelaySmallJob(t *testing.T) {
	s := startServer(t, "--pool-size", "2")
	hog := make(chan reply, 1)
	go func() { hog <- s.execute(t, scriptWithTimeout("def main():\n    while True: pass", 3)) }()
	waitFor(t, "the hog to start", func() bool {
		req, _ := http.NewRequest("GET", s.URL+"/ready", nil)
		return do(t, req).Body["busy_workers"] == 1.0
	})
	if r := s.execute(t, script("def main():\n    return 'small'")); r.Body["result"] != "small" {
		t.Fatalf("small job: %s", r.Raw)
	}
	select {
	case r := <-hog:
		t.Errorf("the hog finished before the small job was answered: %s", r.Raw)
	default: // the small job was answered while the hog still ran
	}
	if r := <-hog; !strings.HasPrefix(r.Body["error"].(string), "Time limit exceeded") {
		t.Errorf("hog: %s", r.Raw)
	}
}

func TestAPIKeysAndMetrics(t *testing.T) {
	s := startServerAs(t, -1, []string{"PYEXEC_API_KEYS=k-one,k-two"}, "--pool-size", "1")
	req, _ := http.NewRequest("POST", s.URL+"/execute", strings.NewReader(script("def main(): return 1")))
	if r := do(t, req); r.Status != 401 || r.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("without a key: %d %s", r.Status, r.Raw)
	}
	req, _ = http.NewRequest("POST", s.URL+"/execute", strings.NewReader(script("def main(): return 1")))
	req.Header.Set("Authorization", "Bearer k-two")
	if r := do(t, req); r.Status != 200 || r.Body["result"] != 1.0 {
		t.Errorf("with a key: %d %s", r.Status, r.Raw)
	}
	// Metrics tell other tenants' counts, outcomes and latencies: with keys
	// they need one too (outside attack round 13).
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("/metrics without a key: %d, want 401", resp.StatusCode)
	}
	req, _ = http.NewRequest("GET", s.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer k-one")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`pyexec_requests_total{code="200",outcome="ok"} 1`,
		`pyexec_requests_total{code="401",outcome="unauthorized"} 1`,
		`pyexec_pool_size 1`,
		`pyexec_worker_spawns_total 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestKilledWorkerTakesItsJobsProcessesAlong: at LevelBasic a job's processes
// live in sessions of their own, outside the worker's process group; when the
// worker is killed (here: its client went away) they must go too.
func TestKilledWorkerTakesItsJobsProcessesAlong(t *testing.T) {
	s := startServer(t, "--pool-size", "1", "--isolation", "basic")
	req, _ := http.NewRequest("GET", s.URL+"/info", nil)
	if info := do(t, req); info.Body["memory_cgroup"] != true {
		t.Skip("needs the worker cgroup (root, cgroup v1)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, "POST", s.URL+"/execute", strings.NewReader(script(`
import subprocess, time
def main():
    subprocess.Popen(["/bin/sleep", "3600"], process_group=0)
    time.sleep(60)`)))
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("request finished; want the client to give up")
	}
	sleeping := func() bool {
		for _, pid := range s.workerPids() {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.HasPrefix(string(b), "/bin/sleep") {
				return true
			}
		}
		return false
	}
	waitFor(t, "the job's background process to be killed with its worker", func() bool { return !sleeping() })
}

// TestREADMESyntaxErrorExample keeps the README's example of a syntax error
// the text the service really returns for the seed's case 9.
func TestREADMESyntaxErrorExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented string
	for _, line := range strings.Split(string(readme), "\n") {
		if rest, ok := strings.CutPrefix(line, "| `syntax_error` | `"); ok {
			documented, _, _ = strings.Cut(rest, "`")
		}
	}
	r := shared.execute(t, script("def main():\n    return {invalid syntax here}"))
	if diff := cmp.Diff(documented, r.Body["error"]); diff != "" {
		t.Errorf("README's syntax_error example (-README +service):\n%s", diff)
	}
}

// TestCrossSiteBrowserPostIsRefused: a page of another site cannot make a
// visitor's browser run a script on the server (a text/plain body needs no
// CORS preflight; outside attack round 13), on either endpoint; the answer
// is the usual JSON error, as the OpenAPI document says.
func TestCrossSiteBrowserPostIsRefused(t *testing.T) {
	for _, path := range []string{"/execute", "/v1/execute"} {
		req, _ := http.NewRequest("POST", shared.URL+path, strings.NewReader(script("def main(): return 42")))
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Origin", "http://evil.test")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		if r := do(t, req); r.Status != http.StatusForbidden || !strings.Contains(r.Raw, "cross-origin") {
			t.Errorf("%s: got %d %s, want 403", path, r.Status, r.Raw)
		}
	}
}
