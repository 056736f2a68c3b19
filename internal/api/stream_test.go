package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/python-executor/python-executor/internal/pool"
	"github.com/python-executor/python-executor/internal/worker"
)

func TestWantsStream(t *testing.T) {
	for accept, want := range map[string]bool{
		"":                                    false,
		"application/json":                    false,
		"text/event-stream":                   true,
		"application/json, text/event-stream": true,
		"text/event-stream;q=0.5":             true,
		"text/event-stream;q=0":               false,
		"text/*":                              false,
	} {
		r := httptest.NewRequest("POST", "/v1/execute", nil)
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		if got := wantsStream(r); got != want {
			t.Errorf("Accept %q: got %v", accept, got)
		}
	}
}

func TestOutputQueueKeepsCharactersWhole(t *testing.T) {
	q := newOutputQueue()
	e := []byte("é€😀") // 2, 3 and 4 bytes
	q.add("stdout", e[:1])
	q.add("stdout", e[1:3]) // é's second byte, € starts
	q.add("stderr", []byte("x"))
	q.add("stdout", e[3:5])
	q.add("stdout", e[5:7])
	got := q.take(false)
	q.add("stdout", e[7:9])
	q.add("stdout", []byte{0xff}) // never a character: passed on
	got = append(got, q.take(true)...)
	want := []chunk{{"stdout", []byte("é")}, {"stderr", []byte("x")}, {"stdout", []byte("€")}, {"stdout", []byte("😀\xff")}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(chunk{})); diff != "" {
		t.Errorf("chunks (-want +got):\n%s", diff)
	}
	q.add("stdout", e[5:7])
	if got := q.take(true); len(got) != 1 || string(got[0].data) != string(e[5:7]) {
		t.Errorf("held-back bytes at the end: %q", got)
	}
}

// scriptedRunner calls its function for each job: it plays a job that
// writes output over time.
type scriptedRunner func(ctx context.Context, job worker.Job) (worker.Outcome, error)

func (f scriptedRunner) Run(ctx context.Context, job worker.Job) (worker.Outcome, error) {
	return f(ctx, job)
}
func (f scriptedRunner) Stat() pool.Stat { return pool.Stat{Size: 1, Idle: 1} }

type event struct{ name, data string }

// readEvents parses server-sent events until EOF.
func readEvents(t *testing.T, r io.Reader) []event {
	t.Helper()
	var evs []event
	sc := bufio.NewScanner(r)
	var ev event
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.name != "" {
				evs = append(evs, ev)
			}
			ev = event{}
		case strings.HasPrefix(line, "event: "):
			ev.name = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[len("data: "):]
		}
	}
	return evs
}

func streamRequest(body string) *http.Request {
	r := httptest.NewRequest("POST", "/v1/execute", strings.NewReader(body))
	r.Header.Set("Accept", "text/event-stream")
	return r
}

func TestStreamResultIsTheNonStreamingBody(t *testing.T) {
	out := worker.Outcome{Kind: worker.KindOK, Result: json.RawMessage(`{"a":"<b>"}`), Stdout: "one\ntwo\n",
		Stderr: "warn\n", Elapsed: 1234567 * time.Nanosecond}
	h := testHandler(scriptedRunner(func(ctx context.Context, job worker.Job) (worker.Outcome, error) {
		if job.Output != nil {
			job.Output("stdout", []byte("one\n"))
			job.Output("stderr", []byte("warn\n"))
			job.Output("stdout", []byte("two\n"))
		}
		return out, nil
	}))
	plain := httptest.NewRecorder()
	h.ServeHTTP(plain, httptest.NewRequest("POST", "/v1/execute", strings.NewReader(`{"script": "x"}`)))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, streamRequest(`{"script": "x"}`))
	for k, v := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := rec.Header().Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	want := []event{{"stdout", `"one\n"`}, {"stderr", `"warn\n"`}, {"stdout", `"two\n"`},
		{"result", strings.TrimSuffix(plain.Body.String(), "\n")}}
	if diff := cmp.Diff(want, readEvents(t, rec.Body), cmp.AllowUnexported(event{})); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestStreamErrorsBeforeOutputAreJSON(t *testing.T) {
	h := testHandler(fakeRunner{err: pool.ErrQueueFull})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, streamRequest(`{"script": "x"}`))
	if rec.Code != 503 || rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Retry-After") != "1" {
		t.Errorf("got %d %s: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, streamRequest(`{"script": 1}`))
	if rec.Code != 400 || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("bad request: got %d %s: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
}

func TestStreamErrorAfterOutputIsAnEvent(t *testing.T) {
	h := testHandler(scriptedRunner(func(ctx context.Context, job worker.Job) (worker.Outcome, error) {
		job.Output("stdout", []byte("partial"))
		return worker.Outcome{}, worker.ErrExited
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, streamRequest(`{"script": "x"}`))
	evs := readEvents(t, rec.Body)
	if rec.Code != 200 || len(evs) != 2 || evs[1].name != "error" {
		t.Fatalf("got %d %v", rec.Code, evs)
	}
	var body struct {
		Status int
		Error  string
	}
	if err := json.Unmarshal([]byte(evs[1].data), &body); err != nil || body.Status != 500 || !strings.HasPrefix(body.Error, "Internal error") {
		t.Errorf("error event %s (%v)", evs[1].data, err)
	}
}

// TestStreamChunkBeforeJobEnds: a chunk reaches the client while the job is
// still running, and a client that goes away cancels the job.
func TestStreamChunkBeforeJobEndsAndCancel(t *testing.T) {
	cancelled := make(chan error, 1)
	srv := httptest.NewServer(testHandler(scriptedRunner(func(ctx context.Context, job worker.Job) (worker.Outcome, error) {
		job.Output("stdout", []byte("first\n"))
		select {
		case <-ctx.Done():
			cancelled <- context.Cause(ctx) // what worker.Run returns
			return worker.Outcome{}, context.Cause(ctx)
		case <-time.After(time.Minute):
			cancelled <- nil
			return worker.Outcome{Kind: worker.KindOK}, nil
		}
	})))
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/v1/execute", strings.NewReader(`{"script": "x"}`))
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for _, want := range []string{"event: stdout\n", "data: \"first\\n\"\n"} {
		if line, err := br.ReadString('\n'); line != want {
			t.Fatalf("read %q (%v), want %q", line, err, want)
		}
	}
	resp.Body.Close()
	select {
	case err := <-cancelled:
		if !errors.Is(err, context.Canceled) { // status maps it to 499 "cancelled"
			t.Errorf("the job ended with %v, want a cancellation", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the job was not cancelled within 30s of the client leaving")
	}
}

// TestStreamToClientThatStopsReading: a stream whose client stops reading
// fails its next write after the reading time, as a JSON answer does, and
// the job is cancelled, instead of both waiting for the server's whole
// WriteTimeout (an outside attack held 1.2 GiB with 40 such streams).
func TestStreamToClientThatStopsReading(t *testing.T) {
	defer func(g time.Duration, r int) { readGrace, readRate = g, r }(readGrace, readRate)
	readGrace, readRate = 200*time.Millisecond, 1<<30 // reading time: 200 ms
	cancelled := make(chan error, 1)
	srv := httptest.NewServer(testHandler(scriptedRunner(func(ctx context.Context, job worker.Job) (worker.Outcome, error) {
		for range 32 { // more than the sockets' buffers hold
			job.Output("stdout", bytes.Repeat([]byte("x"), 1<<20))
		}
		select {
		case <-ctx.Done():
			cancelled <- context.Cause(ctx)
			return worker.Outcome{}, context.Cause(ctx)
		case <-time.After(time.Minute):
			cancelled <- nil
			return worker.Outcome{Kind: worker.KindOK}, nil
		}
	})))
	defer srv.Close()
	startAnswer(t, srv, "POST /v1/execute HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n", `{"script": "x"}`)
	// The stream has begun; the client reads no more.
	select {
	case err := <-cancelled:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the job ended with %v, want a cancellation", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the job still ran 30 s after its client stopped reading")
	}
}
