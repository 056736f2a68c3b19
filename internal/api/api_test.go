package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/python-executor/python-executor/internal/metrics"
	"github.com/python-executor/python-executor/internal/pool"
	"github.com/python-executor/python-executor/internal/worker"
)

// fakeRunner answers every job at once; it lets the handler be measured and
// unit-tested without workers (the end-to-end tests use real ones).
type fakeRunner struct {
	out worker.Outcome
	err error
}

func (f fakeRunner) Run(context.Context, worker.Job) (worker.Outcome, error) { return f.out, f.err }
func (f fakeRunner) Stat() pool.Stat                                         { return pool.Stat{Size: 1, Idle: 1} }

func testHandler(r Runner) http.Handler {
	return Handler(Config{MaxScriptBytes: 1 << 20, DefaultTimeout: 30 * time.Second, MaxTimeout: 30 * time.Second}, r, zerolog.Nop())
}

func TestStatusMapping(t *testing.T) {
	tests := []struct {
		err        error
		status     int
		retryAfter string
	}{
		{pool.ErrQueueFull, 503, "1"},
		{pool.ErrQueueTimeout, 503, "1"},
		{pool.ErrClosed, 503, "1"},
		{fmt.Errorf("%w: %w", pool.ErrClosed, worker.ErrExited), 503, "1"}, // killed by shutdown
		{worker.ErrUnresponsive, 500, ""},
		{worker.ErrExited, 500, ""},
		{worker.ErrProtocol, 500, ""},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			rec := httptest.NewRecorder()
			testHandler(fakeRunner{err: tt.err}).ServeHTTP(rec, httptest.NewRequest("POST", "/execute", strings.NewReader(`{"script": "x"}`)))
			var body map[string]any
			json.Unmarshal(rec.Body.Bytes(), &body)
			if rec.Code != tt.status || rec.Header().Get("Retry-After") != tt.retryAfter || body["stdout"] != "" {
				t.Errorf("got %d Retry-After=%q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
			}
			if msg, _ := body["error"].(string); strings.Contains(msg, tt.err.Error()) {
				t.Errorf("client sees Go error text: %q", msg)
			}
		})
	}
}

func TestResultPassesThrough(t *testing.T) {
	out := worker.Outcome{Kind: worker.KindOK, Result: json.RawMessage(`{"a":[1,2.5,null]}`), Stdout: "line\n\n"}
	rec := httptest.NewRecorder()
	testHandler(fakeRunner{out: out}).ServeHTTP(rec, httptest.NewRequest("POST", "/execute", strings.NewReader(`{"script": "x"}`)))
	if diff := cmp.Diff(`{"result":{"a":[1,2.5,null]},"stdout":"line"}`+"\n", rec.Body.String()); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}

func BenchmarkExecuteHandler(b *testing.B) {
	h := testHandler(fakeRunner{out: worker.Outcome{Kind: worker.KindOK,
		Result: json.RawMessage(`{"x_sum": 55, "y_sum": 385, "correlation": 0.9745586289152092}`),
		Stdout: "Creating dataset...\nDataset has 10 rows\n"}})
	body := `{"script": "import pandas as pd\nimport numpy as np\n\ndef main():\n    print(\"Creating dataset...\")\n    data = pd.DataFrame({\n        \"x\": np.arange(1, 11),\n        \"y\": np.arange(1, 11) ** 2\n    })\n    return {\"x_sum\": int(data[\"x\"].sum())}"}`
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/execute", strings.NewReader(body)))
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
		io.Copy(io.Discard, rec.Body)
	}
}

func TestAPIKeys(t *testing.T) {
	ok := fakeRunner{out: worker.Outcome{Kind: worker.KindOK, Result: json.RawMessage(`1`)}}
	h := Handler(Config{MaxScriptBytes: 1 << 20, DefaultTimeout: time.Second, MaxTimeout: time.Second,
		APIKeys: []string{"key-one", "key-two"}, PerKeyConcurrency: 1,
		Metrics: metrics.New(func() pool.Stat { return pool.Stat{} })}, ok, zerolog.Nop())
	tests := []struct {
		name, path, auth string
		status           int
	}{
		{"no header", "/execute", "", 401},
		{"wrong key", "/execute", "Bearer key-three", 401},
		{"prefix of a key", "/execute", "Bearer key-on", 401},
		{"not bearer", "/execute", "Basic a2V5LW9uZQ==", 401},
		{"first key", "/execute", "Bearer key-one", 200},
		{"second key", "/execute", "Bearer key-two", 200},
		{"health stays open", "/health", "", 200},
		// Other tenants' request counts, latencies and sizes (round 13).
		{"metrics need a key", "/metrics", "", 401},
		{"metrics with a key", "/metrics", "Bearer key-one", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := "POST"
			if tt.path == "/health" || tt.path == "/metrics" {
				method = "GET"
			}
			req := httptest.NewRequest(method, tt.path, strings.NewReader(`{"script": "x"}`))
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Errorf("got %d %s, want %d", rec.Code, rec.Body, tt.status)
			}
			if tt.status == 401 && (rec.Header().Get("WWW-Authenticate") == "" || !strings.Contains(rec.Body.String(), `"stdout":""`)) {
				t.Errorf("401 without WWW-Authenticate or JSON error: %s", rec.Body)
			}
		})
	}
}

// blockingRunner holds every job until release is closed.
type blockingRunner struct{ started, release chan struct{} }

func (b blockingRunner) Run(context.Context, worker.Job) (worker.Outcome, error) {
	b.started <- struct{}{}
	<-b.release
	return worker.Outcome{Kind: worker.KindOK, Result: json.RawMessage(`1`)}, nil
}
func (b blockingRunner) Stat() pool.Stat { return pool.Stat{} }

func TestPerKeyConcurrency(t *testing.T) {
	br := blockingRunner{started: make(chan struct{}, 1), release: make(chan struct{})}
	h := Handler(Config{MaxScriptBytes: 1 << 20, DefaultTimeout: time.Second, MaxTimeout: time.Second,
		APIKeys: []string{"a", "b"}, PerKeyConcurrency: 1}, br, zerolog.Nop())
	post := func(key string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/execute", strings.NewReader(`{"script": "x"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	done := make(chan int)
	go func() { done <- post("a").Code }()
	<-br.started
	if rec := post("a"); rec.Code != http.StatusTooManyRequests || !strings.Contains(rec.Body.String(), "limit 1") {
		t.Errorf("second concurrent job of key a: %d %s, want 429 naming the limit", rec.Code, rec.Body)
	}
	go func() { done <- post("b").Code }()
	<-br.started // key b is not limited by key a's job
	close(br.release)
	if a, b := <-done, <-done; a != 200 || b != 200 {
		t.Errorf("statuses %d, %d, want 200, 200", a, b)
	}
}

func TestMetrics(t *testing.T) {
	m := metrics.New(func() pool.Stat { return pool.Stat{Size: 2, Idle: 1, Busy: 1, Kills: map[string]int64{"cancelled": 3}} })
	h := Handler(Config{MaxScriptBytes: 1 << 20, DefaultTimeout: time.Second, MaxTimeout: time.Second, Metrics: m},
		fakeRunner{out: worker.Outcome{Kind: worker.KindTimeout, Error: "Time limit exceeded"}}, zerolog.Nop())
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/execute", strings.NewReader(`{"script": "x"}`)))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/execute", strings.NewReader(`[]`)))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`pyexec_requests_total{code="200",outcome="timeout"} 1`,
		`pyexec_requests_total{code="400",outcome="bad_request"} 1`,
		`pyexec_request_duration_seconds_count{outcome="timeout"} 1`,
		`pyexec_pool_workers{state="busy"} 1`,
		`pyexec_worker_kills_total{reason="cancelled"} 3`,
		`pyexec_queue_wait_seconds_count 0`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// The process collector's network counters are the whole network
	// namespace's: the host's traffic, other tenants' request sizes.
	if strings.Contains(rec.Body.String(), "process_network_") {
		t.Errorf("/metrics has the network namespace's traffic")
	}
}

// TestCrossOriginRequestsAreRefused: a page of another site cannot make a
// visitor's browser run a script (a text/plain POST needs no preflight),
// while same-origin pages (the playground) and non-browser clients can.
func TestCrossOriginRequestsAreRefused(t *testing.T) {
	h := testHandler(fakeRunner{out: worker.Outcome{Kind: worker.KindOK, Result: json.RawMessage(`1`)}})
	for _, c := range []struct {
		name    string
		headers map[string]string
		status  int
	}{
		{"no browser headers (curl, the CLI)", nil, 200},
		{"same origin", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://example.com"}, 200},
		{"typed in by the user", map[string]string{"Sec-Fetch-Site": "none"}, 200},
		{"another site", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.test"}, 403},
		{"another site, old browser", map[string]string{"Origin": "http://evil.test"}, 403},
	} {
		for _, path := range []string{"/execute", "/v1/execute"} {
			req := httptest.NewRequest("POST", "http://example.com"+path, strings.NewReader(`{"script": "x"}`))
			req.Header.Set("Content-Type", "text/plain")
			for k, v := range c.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != c.status {
				t.Errorf("%s, %s: got %d %s, want %d", c.name, path, rec.Code, rec.Body, c.status)
			}
			if c.status == 403 && !strings.Contains(rec.Body.String(), "cross-origin") {
				t.Errorf("%s: 403 without the JSON error: %s", c.name, rec.Body)
			}
		}
	}
}
