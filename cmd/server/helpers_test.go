package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

// These tests run the real server binary with real Python workers.

var (
	binary string  // the server, built once by TestMain
	shared *server // one server for the tests that need no special flags
)

func TestMain(m *testing.M) {
	code := testMain(m)
	if dir := pyexecDir.Load(); dir != nil {
		os.RemoveAll(*dir)
	}
	os.Exit(code)
}

// pyexecDir holds the pyexec binary, once a test has built it.
var pyexecDir atomic.Pointer[string]

func testMain(m *testing.M) int {
	if url := os.Getenv("PYEXEC_E2E_URL"); url != "" {
		// A server someone else runs (scripts/docker-test.sh): only the
		// tests that use the shared server make sense against it.
		shared = &server{URL: url}
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "python-executor-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	binary = filepath.Join(dir, "python-executor")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building server:", err)
		return 1
	}
	// A queue timeout far above what a loaded CI machine needs to get through
	// a burst of jobs: tests assert behaviour, not throughput.
	shared, err = start("--pool-size", "2", "--queue-timeout", "2m")
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting shared server:", err)
		return 1
	}
	code := m.Run()
	if err := shared.stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping shared server:", err)
		code = 1
	}
	return code
}

type server struct {
	URL    string
	apiKey string // sent as a bearer token by execute, when set
	cmd    *exec.Cmd
	mark   string // PYEXEC_TEST_MARK: passed to every worker, to find them in /proc
	logs   *logBuffer
	done   chan struct{}
	err    error // Wait's result, once done is closed
}

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startServer starts a server with extra flags for one test and stops it,
// checking that no worker survives, when the test ends.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	return startServerAs(t, -1, nil, args...)
}

var servers atomic.Int64

var uidRanges atomic.Int64

// freshUIDs returns the first of 16 worker uids that no other server of
// this test process uses (nor, by its pid, of another): servers that run at
// once need ranges of their own, since a root server sweeps a worker's uid
// with kill(-1), and a range another live server holds is refused. (A
// range reused every 64 servers once took the shared server's under
// -count=5.)
func freshUIDs() int {
	return 1_000_000_000 + (os.Getpid()%4096)*65536 + int(uidRanges.Add(1)%4096)*16
}

func start(args ...string) (*server, error) { return startAs(-1, nil, args...) }

// startServerAs is startServer with the server running as uid (and gid)
// uid, when uid >= 0, and extra environment variables.
func startServerAs(t *testing.T, uid int, env []string, args ...string) *server {
	t.Helper()
	s, err := startAs(uid, env, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.logs)
		}
	})
	return s
}

func startAs(uid int, env []string, args ...string) (*server, error) {
	n := servers.Add(1)
	mark := fmt.Sprintf("%d-%d", os.Getpid(), n)
	uids := strconv.Itoa(freshUIDs())
	cmd := exec.Command(binary, append([]string{"--addr", "127.0.0.1:0", "--log-level", "debug",
		"--pass-env", "PYEXEC_TEST_MARK", "--worker-uid", uids, "--worker-gid", uids, "--worker-uids", "16"}, args...)...)
	cmd.Env = append([]string{"PYEXEC_TEST_MARK=" + mark, "PATH=/usr/bin:/bin"}, env...)
	if uid >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, mark: mark, logs: &logBuffer{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.logs.Write([]byte(line + "\n"))
			var ev struct{ Message, Addr string }
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Message == "listening" {
				addr <- ev.Addr
			}
		}
		s.err = cmd.Wait()
		close(s.done)
	}()
	select {
	case a := <-addr:
		s.URL = "http://" + a
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("server exited before listening: %v\n%s", s.err, s.logs)
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		return nil, fmt.Errorf("server did not start in 60s:\n%s", s.logs)
	}
}

// stop sends SIGTERM, waits for a clean exit and checks no worker is left.
func (s *server) stop() error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("server did not stop within 60s of SIGTERM")
	}
	if s.err != nil {
		return fmt.Errorf("server exited with %v:\n%s", s.err, s.logs)
	}
	return s.noWorkersLeft()
}

func (s *server) noWorkersLeft() error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := s.workerPids()
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("worker processes outlived the server: %v", pids)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// workerPids lists the live processes, other than the server, that carry the
// server's mark in their environment: its workers and their job processes.
func (s *server) workerPids() []int {
	want := []byte("PYEXEC_TEST_MARK=" + s.mark + "\x00")
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || pid == s.cmd.Process.Pid {
			continue
		}
		if bytes.Contains(env, want) {
			if stat, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil && strings.Contains(string(stat), ") Z ") {
				continue // a zombie is dead already
			}
			pids = append(pids, pid)
		}
	}
	return pids
}

// reply is a decoded /execute response.
type reply struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

func (s *server) execute(t *testing.T, body string) reply {
	t.Helper()
	return s.executeCtx(t, context.Background(), body)
}

func (s *server) executeCtx(t *testing.T, ctx context.Context, body string) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/execute", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if s.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+s.apiKey)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	if !utf8.Valid(raw) {
		t.Fatalf("response is not valid UTF-8: %q", raw)
	}
	if err := json.Unmarshal(raw, &r.Body); err != nil {
		t.Fatalf("response is not a JSON object: %v: %q", err, raw)
	}
	if err := checkResponse(req, resp.StatusCode, resp.Header, raw); err != nil {
		t.Errorf("%s %s: response %d does not match openapi.json: %v\n%s", req.Method, req.URL.Path, resp.StatusCode, err, raw)
	}
	return r
}

// script builds an /execute body from Python source.
func script(src string) string {
	b, _ := json.Marshal(map[string]string{"script": src})
	return string(b)
}

// scriptWithTimeout builds a body with a timeout in seconds.
func scriptWithTimeout(src string, seconds float64) string {
	b, _ := json.Marshal(map[string]any{"script": src, "timeout": seconds})
	return string(b)
}

// heldByProcesses is a job script whose main forks n processes that each
// run fill() (defined in setup, a script's top lines, with its imports) and
// then hold what it made, and returns ret once every one of them has: the
// outcome does not depend on the machine's speed.
func heldByProcesses(setup string, n int, ret string) string {
	return fmt.Sprintf(`import os, time
%s
def main():
    r, w = os.pipe()
    for _ in range(%d):
        if os.fork() == 0:
            fill()
            os.write(w, b"1")
            time.sleep(60)
            os._exit(0)
    for _ in range(%d): os.read(r, 1)
    time.sleep(5)
    return %q`, setup, n, n, ret)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// proc is one process as /proc/<pid>/stat shows it.
type proc struct {
	pid, ppid, sid int
	state          byte
	comm           string
}

// procs lists every process on the machine.
func procs() map[int]proc {
	all := map[int]proc{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		lp, rp := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if err != nil || lp < 0 || rp < lp || rp+2 >= len(b) {
			continue
		}
		f := strings.Fields(string(b[rp+2:]))
		ppid, _ := strconv.Atoi(f[1])
		sid, _ := strconv.Atoi(f[3])
		all[pid] = proc{pid: pid, ppid: ppid, sid: sid, state: f[0][0], comm: string(b[lp+1 : rp])}
	}
	return all
}

// workers lists the server's worker processes that have not exited: its
// children (bubblewrap at the namespaces level, the template at basic).
func (s *server) workers() []int {
	var pids []int
	for _, p := range procs() {
		if p.ppid == s.cmd.Process.Pid && p.state != 'Z' && p.state != 'X' {
			pids = append(pids, p.pid)
		}
	}
	return pids
}

// warmWorkers lists the workers that have started (the server logged them
// as started) and not exited.
func (s *server) warmWorkers() []int {
	started := map[int]bool{}
	for _, line := range strings.Split(s.logs.String(), "\n") {
		var ev struct {
			Message string
			Pid     int
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Message == "worker started" {
			started[ev.Pid] = true
		}
	}
	var pids []int
	for _, pid := range s.workers() {
		if started[pid] {
			pids = append(pids, pid)
		}
	}
	return pids
}

// template returns worker's Python template interpreter: the worker itself
// at the basic level, the first python3 below it inside the sandbox.
func template(worker int) int {
	all := procs()
	for level := []int{worker}; len(level) > 0; {
		var next []int
		for _, pid := range level {
			if all[pid].comm == "python3" {
				return pid
			}
			for _, p := range all {
				if p.ppid == pid {
					next = append(next, p.pid)
				}
			}
		}
		level = next
	}
	return 0
}

// workerOf returns the pid of the worker that ran the request with the
// given X-Request-ID, from the server's access log line for it.
func (s *server) workerOf(t *testing.T, id string) int {
	t.Helper()
	pid := 0
	waitFor(t, "the access log line of request "+id, func() bool {
		for _, line := range strings.Split(s.logs.String(), "\n") {
			var ev struct {
				Message   string
				RequestID string `json:"request_id"`
				WorkerPid int    `json:"worker_pid"`
			}
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Message == "request" && ev.RequestID == id {
				pid = ev.WorkerPid
				return true
			}
		}
		return false
	})
	return pid
}

// executeAs sends an /execute request with the given X-Request-ID.
func (s *server) executeAs(t *testing.T, id, body string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+"/execute", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-ID", id)
	return do(t, req)
}

// ready returns GET /ready's answer.
func (s *server) ready(t *testing.T) reply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/ready", nil)
	return do(t, req)
}

// metric returns the value of one sample in GET /metrics, or -1.
func (s *server) metric(t *testing.T, sample string) float64 {
	t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// needNamespaces skips a test that checks what only the namespaces level
// gives, on a host where bubblewrap cannot create user namespaces.
func needNamespaces(t *testing.T) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, shared.URL+"/info", nil)
	if r := do(t, req); r.Body["isolation"] != "namespaces" {
		t.Skipf("needs user namespaces, which this host does not give (isolation %v): the basic-level tests cover the rest", r.Body["isolation"])
	}
}
