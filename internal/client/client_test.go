package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const okBody = `{"outcome":"ok","result":{"n":3},"error":null,"stdout":"hi\n","stdout_truncated":false,"stderr":"","stderr_truncated":false,` +
	`"usage":{"wall_ms":1.5,"cpu_ms":2,"memory_peak_mb":60.5},"files":[{"path":"out.txt","size":2,"content":"aGk="}],"files_omitted":0,` +
	`"images":[{"format":"png","content":"iVBORw=="}],"images_omitted":1}`

func TestExecute(t *testing.T) {
	var got map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/execute" || r.Header.Get("Authorization") != "Bearer k1" ||
			r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("request %s %s %v", r.Method, r.URL.Path, r.Header)
		}
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &got)
		io.WriteString(w, okBody)
	}))
	defer srv.Close()
	c := New(srv.URL+"/", "k1")
	input, _ := InputValue(map[string]int{"x": 1})
	res, err := c.Execute(context.Background(), Request{
		Script: "def main(d):\n    return d", Timeout: 2.5, Input: input,
		Files:  []File{{Path: "a/b.csv", Content: []byte("1,2\n")}},
		Limits: &Limits{MemoryMB: 100},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"script": "def main(d):\n    return d", "timeout": 2.5, "input": map[string]any{"x": 1.0},
		"files": []any{map[string]any{"path": "a/b.csv", "content": "MSwyCg=="}}, "limits": map[string]any{"memory_mb": 100.0}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request body (-want +got):\n%s", diff)
	}
	cpu, mem := int64(2), 60.5
	wantRes := &Result{Outcome: "ok", Result: json.RawMessage(`{"n":3}`), Stdout: "hi\n",
		Usage:  Usage{WallMillis: 1.5, CPUMillis: &cpu, MemoryPeakMB: &mem},
		Files:  []File{{Path: "out.txt", Size: 2, Content: []byte("hi")}},
		Images: []Image{{Format: "png", Content: []byte("\x89PNG")}}, ImagesOmitted: 1}
	if diff := cmp.Diff(wantRes, res); diff != "" || !res.OK() {
		t.Errorf("result (-want +got):\n%s", diff)
	}
}

func TestExecuteNoInputAndNullInput(t *testing.T) {
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		io.WriteString(w, okBody)
	}))
	defer srv.Close()
	c := New(srv.URL, "")
	c.Execute(context.Background(), Request{Script: "s"})
	c.Execute(context.Background(), Request{Script: "s", Input: json.RawMessage("null")})
	if diff := cmp.Diff([]string{`{"script":"s"}`, `{"script":"s","input":null}`}, bodies); diff != "" {
		t.Errorf("bodies (-want +got):\n%s", diff)
	}
}

func TestScriptFailureIsNotAnError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"outcome":"exception","result":null,"error":{"type":"ZeroDivisionError","message":"division by zero","line":2,"traceback":"..."},`+
			`"stdout":"","stdout_truncated":false,"stderr":"","stderr_truncated":false,"usage":{"wall_ms":1,"cpu_ms":null,"memory_peak_mb":null},`+
			`"files":[],"files_omitted":0,"images":[],"images_omitted":0}`)
	}))
	defer srv.Close()
	res, err := New(srv.URL, "").Execute(context.Background(), Request{Script: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK() || res.Error == nil || res.Error.Error() != "ZeroDivisionError: division by zero (line 2)" {
		t.Errorf("got %+v", res)
	}
}

func TestRetries503(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if string(b) != `{"script":"s"}` {
			t.Errorf("attempt %d sent %q", calls.Load(), b)
		}
		if calls.Add(1) < 3 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":"Server busy: the job queue is full; retry later","stdout":""}`)
			return
		}
		io.WriteString(w, okBody)
	}))
	defer srv.Close()
	c := New(srv.URL, "")
	c.MaxRetryWait = time.Millisecond // honour Retry-After, capped for the test
	res, err := c.Execute(context.Background(), Request{Script: "s"})
	if err != nil || !res.OK() || calls.Load() != 3 {
		t.Fatalf("got %v %v after %d calls", res, err, calls.Load())
	}

	// Out of retries: the last refusal is the error.
	calls.Store(-10)
	c.MaxRetries = 2
	_, err = c.Execute(context.Background(), Request{Script: "s"})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 503 || apiErr.RetryAfter != time.Second ||
		apiErr.Message != "Server busy: the job queue is full; retry later" || calls.Load() != -7 {
		t.Errorf("got %v after %d calls, want a 503 APIError after 3", err, calls.Load()+10)
	}
}

func TestNoRetryOnOtherErrors(t *testing.T) {
	for _, code := range []int{400, 401, 413, 500} {
		var calls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			w.WriteHeader(code)
			io.WriteString(w, `{"error":"nope","stdout":""}`)
		}))
		_, err := New(srv.URL, "").Execute(context.Background(), Request{Script: "s"})
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.StatusCode != code || apiErr.Message != "nope" || calls.Load() != 1 {
			t.Errorf("%d: got %v after %d calls", code, err, calls.Load())
		}
		srv.Close()
	}
}

func TestRetryWaitEndsWithContext(t *testing.T) {
	asked := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":"busy","stdout":""}`)
		asked <- struct{}{}
	}))
	defer srv.Close()
	c := New(srv.URL, "")
	c.MaxRetryWait = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-asked
		cancel()
	}()
	if _, err := c.Execute(ctx, Request{Script: "s"}); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"": 0, "1": time.Second, " 7 ": 7 * time.Second, "-1": 0, "soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	} {
		if got := retryAfter(in, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestHealth(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, `{"status":"healthy"}`)
	}))
	defer srv.Close()
	if err := New(srv.URL, "").Health(context.Background()); err != nil {
		t.Error(err)
	}
	srv.Close()
	if err := New(srv.URL, "").Health(context.Background()); err == nil {
		t.Error("health of a closed server: no error")
	}
}
