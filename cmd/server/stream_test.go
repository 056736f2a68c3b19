package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/google/go-cmp/cmp"
)

func init() {
	// openapi.json describes a stream as the list of its events, each
	// {"event": name, "data": its data parsed as JSON}: checkResponse
	// validates streams against it through this decoder.
	openapi3filter.RegisterBodyDecoder("text/event-stream",
		func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
			evs, err := parseEvents(body)
			if err != nil {
				return nil, err
			}
			list := []any{}
			for _, ev := range evs {
				var data any
				if err := json.Unmarshal([]byte(ev.Data), &data); err != nil {
					return nil, fmt.Errorf("event %s: data is not JSON: %w", ev.Name, err)
				}
				list = append(list, map[string]any{"event": ev.Name, "data": data})
			}
			return list, nil
		})
}

type sse struct{ Name, Data string }

// parseEvents reads server-sent events to EOF, checking that each is one
// event line and one data line, as the server writes them.
func parseEvents(r io.Reader) ([]sse, error) {
	var evs []sse
	br := bufio.NewReader(r)
	for {
		ev, err := nextEvent(br)
		if err == io.EOF {
			return evs, nil
		}
		if err != nil {
			return evs, err
		}
		evs = append(evs, ev)
	}
}

// nextEvent reads one event, skipping comments.
func nextEvent(br *bufio.Reader) (sse, error) {
	var ev sse
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if err == io.EOF && line == "" && ev.Name == "" {
				return ev, io.EOF
			}
			return ev, fmt.Errorf("stream ends inside an event: %q", line)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case strings.HasPrefix(line, ":") && ev.Name == "":
		case strings.HasPrefix(line, "event: ") && ev.Name == "":
			ev.Name = line[len("event: "):]
		case strings.HasPrefix(line, "data: ") && ev.Name != "" && ev.Data == "":
			ev.Data = line[len("data: "):]
		case line == "" && ev.Name != "":
			return ev, nil
		default:
			return ev, fmt.Errorf("unexpected line %q", line)
		}
	}
}

// stream posts body to POST /v1/execute asking for events.
func (s *server) stream(t *testing.T, ctx context.Context, body any) *http.Response {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/v1/execute", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// streamAll runs a streamed job to its end, checks the response against
// openapi.json and returns its events.
func (s *server) streamAll(t *testing.T, body any) []sse {
	t.Helper()
	resp := s.stream(t, context.Background(), body)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	if err := checkResponse(resp.Request, resp.StatusCode, resp.Header, raw); err != nil {
		t.Errorf("stream does not match openapi.json: %v\n%s", err, raw)
	}
	evs, err := parseEvents(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestV1StreamResult: the result event is the body the same request gets
// without streaming, and the chunks add up to its stdout and stderr.
func TestV1StreamResult(t *testing.T) {
	job := obj{"script": "import sys\ndef main(n):\n    for i in range(n):\n        print('line', i, 'é€😀')\n" +
		"        print('warn', i, file=sys.stderr)\n    return {'n': n}\n", "input": 3}
	evs := shared.streamAll(t, job)
	plain := shared.v1(t, job)
	if len(evs) == 0 || evs[len(evs)-1].Name != "result" {
		t.Fatalf("last event is not the result: %v", evs)
	}
	var streamed map[string]any
	if err := json.Unmarshal([]byte(evs[len(evs)-1].Data), &streamed); err != nil {
		t.Fatal(err)
	}
	// Two runs differ only in how long they took.
	for _, b := range []map[string]any{streamed, plain.Body} {
		b["usage"] = nil
	}
	if diff := cmp.Diff(plain.Body, streamed); diff != "" {
		t.Errorf("result event differs from the JSON body (-plain +streamed):\n%s", diff)
	}
	out := map[string]string{}
	for _, ev := range evs[:len(evs)-1] {
		var chunk string
		if err := json.Unmarshal([]byte(ev.Data), &chunk); err != nil {
			t.Fatalf("%s event: %v", ev.Name, err)
		}
		out[ev.Name] += chunk
	}
	if out["stdout"] != plain.Body["stdout"] || out["stderr"] != plain.Body["stderr"] {
		t.Errorf("chunks add up to %q, result has %q and %q", out, plain.Body["stdout"], plain.Body["stderr"])
	}
}

// TestV1StreamChunkBeforeEnd: output reaches the client while the script
// still runs, and closing the stream cancels the job.
func TestV1StreamChunkBeforeEnd(t *testing.T) {
	// The 200 was sent before the job was cancelled.
	cancelled := `pyexec_requests_total{code="200",outcome="cancelled"}`
	before := shared.metric(t, cancelled)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := shared.stream(t, ctx, obj{"script": "import time\ndef main():\n    print('started')\n    time.sleep(25)\n    return 1\n", "timeout": 30})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// print() may write the text and the newline separately.
	br, got := bufio.NewReader(resp.Body), ""
	for got != "started\n" {
		ev, err := nextEvent(br)
		var chunk string
		if err != nil || ev.Name != "stdout" || json.Unmarshal([]byte(ev.Data), &chunk) != nil || !strings.HasPrefix("started\n", got+chunk) {
			t.Fatalf("after %q, event %v (%v)", got, ev, err)
		}
		got += chunk
	}
	cancel()
	resp.Body.Close()
	waitFor(t, "the job to be cancelled", func() bool { return shared.metric(t, cancelled) > before })
}

// TestV1StreamRefusals: what goes wrong before any output keeps its status
// and JSON body.
func TestV1StreamRefusals(t *testing.T) {
	resp := shared.stream(t, context.Background(), obj{"script": 1})
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("bad request: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	if err := checkResponse(resp.Request, resp.StatusCode, resp.Header, raw); err != nil {
		t.Error(err)
	}
	// A job that prints nothing streams only its result.
	evs := shared.streamAll(t, obj{"script": "def main():\n    return {invalid syntax here}\n"})
	if len(evs) != 1 || evs[0].Name != "result" || !strings.Contains(evs[0].Data, `"outcome":"syntax_error"`) {
		t.Errorf("events %v", evs)
	}
}
