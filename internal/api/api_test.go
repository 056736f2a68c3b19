package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

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
func (f fakeRunner) Stat() pool.Stat                                          { return pool.Stat{Size: 1, Idle: 1} }

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
