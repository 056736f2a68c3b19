package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/python-executor/python-executor/internal/client"
)

// v1 posts body (marshalled when it is not a string) to POST /v1/execute.
func (s *server) v1(t *testing.T, body any) reply {
	t.Helper()
	b, ok := body.(string)
	if !ok {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		b = string(raw)
	}
	req, err := http.NewRequest(http.MethodPost, s.URL+"/v1/execute", strings.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if s.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+s.apiKey)
	}
	return do(t, req)
}

type obj = map[string]any

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// get walks a decoded JSON body: get(body, "error", "type").
func get(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func TestV1Input(t *testing.T) {
	tests := []struct {
		name    string
		body    obj
		outcome string
		result  any
		errType string
		errHas  string
	}{
		{"object input", obj{"script": "def main(data):\n    return {'n': len(data['xs']), 'sum': sum(data['xs'])}", "input": obj{"xs": []int{1, 2, 3}}},
			"ok", obj{"n": 3.0, "sum": 6.0}, "", ""},
		{"string input is data, not code", obj{"script": "def main(s):\n    return s.upper()", "input": "'); import os; ('"},
			"ok", "'); IMPORT OS; ('", "", ""},
		{"null input is an input", obj{"script": "def main(x):\n    return x is None", "input": nil},
			"ok", true, "", ""},
		{"no input, parameter with default", obj{"script": "def main(x=5):\n    return x"},
			"ok", 5.0, "", ""},
		{"input, parameter with default", obj{"script": "def main(x=5):\n    return x", "input": 7},
			"ok", 7.0, "", ""},
		{"input, *args", obj{"script": "def main(*a):\n    return list(a)", "input": 1},
			"ok", []any{1.0}, "", ""},
		{"input but main takes none", obj{"script": "def main():\n    return 1", "input": 1},
			"exception", nil, "TypeError", `the request has an "input", but main() takes no parameter`},
		{"main needs input but none given", obj{"script": "def main(data):\n    return data"},
			"exception", nil, "TypeError", `main() requires a parameter (data), but the request has no "input"`},
		{"main takes two", obj{"script": "def main(a, b):\n    return a", "input": 1},
			"exception", nil, "TypeError", "main() takes 2 required parameters"},
		{"no input, seed-style script", obj{"script": "def main():\n    return {'message': 'Hello'}"},
			"ok", obj{"message": "Hello"}, "", ""},
		// As deep as the server takes (deeper: TestV1BadRequests), with
		// brackets and braces in strings, which do not nest.
		{"input nested 500 deep", obj{"script": "def main(x):\n    n = 0\n    while isinstance(x, list):\n        x, n = x[0], n + 1\n    return [n, x]",
			"input": json.RawMessage(strings.Repeat("[", 499) + `["[{\"]"]` + strings.Repeat("]", 499))}, "ok", []any{500.0, `[{"]`}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := shared.v1(t, tt.body)
			if r.Status != 200 || r.Body["outcome"] != tt.outcome || r.Header.Get("X-Execution-Outcome") != tt.outcome {
				t.Fatalf("got %d %s, want outcome %s", r.Status, r.Raw, tt.outcome)
			}
			if diff := cmp.Diff(tt.result, r.Body["result"]); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			if tt.errType == "" {
				if r.Body["error"] != nil {
					t.Errorf("error = %v, want null", r.Body["error"])
				}
				return
			}
			msg, _ := get(r.Body, "error", "message").(string)
			if get(r.Body, "error", "type") != tt.errType || !strings.Contains(msg, tt.errHas) {
				t.Errorf("error = %v, want type %s with %q", r.Body["error"], tt.errType, tt.errHas)
			}
			if get(r.Body, "error", "line") != 1.0 {
				t.Errorf("error line = %v, want 1 (main's def)", get(r.Body, "error", "line"))
			}
		})
	}
}

func TestV1Errors(t *testing.T) {
	tests := []struct {
		name, script string
		outcome      string
		errType      string
		message      string
		line         any
		traceback    string // exact, "" for null
	}{
		{"exception in a nested call", "def f(a):\n    return 1 / a\n\ndef main():\n    return f(0)\n",
			"exception", "ZeroDivisionError", "division by zero", 2.0,
			"Traceback (most recent call last):\n  File \"<script>\", line 5, in main\n    return f(0)\n  File \"<script>\", line 2, in f\n    return 1 / a\nZeroDivisionError: division by zero\n"},
		{"exception inside a library: only the script's frames", "import pandas as pd\n\ndef main():\n    df = pd.DataFrame({'a': [1]})\n    return df['missing']\n",
			"exception", "KeyError", "'missing'", 5.0,
			"Traceback (most recent call last):\n  File \"<script>\", line 5, in main\n    return df['missing']\nKeyError: 'missing'\n"},
		{"exception at import time", "x = 1\nraise ValueError('bad config')\ndef main():\n    return 1\n",
			"exception", "ValueError", "bad config", 2.0,
			"Traceback (most recent call last):\n  File \"<script>\", line 2, in <module>\n    raise ValueError('bad config')\nValueError: bad config\n"},
		{"syntax error", "def main():\n    return {invalid syntax here}\n",
			"syntax_error", "SyntaxError", "invalid syntax. Perhaps you forgot a comma?", 2.0, ""},
		{"not serializable: no script frame", "class C:\n    pass\n\ndef main():\n    return C()\n",
			"exception", "TypeError", "Object of type C is not JSON serializable", nil,
			"TypeError: Object of type C is not JSON serializable\n"},
		{"missing main", "def other():\n    return 1\n",
			"missing_main", "missing_main", "Script must contain a main() function", nil, ""},
		{"sys.exit", "import sys\ndef main():\n    sys.exit(3)\n",
			"exception", "SystemExit", "script called sys.exit(3)", 3.0,
			"Traceback (most recent call last):\n  File \"<script>\", line 3, in main\n    sys.exit(3)\nSystemExit: script called sys.exit(3)\n"},
		{"os._exit", "import os\ndef main():\n    os._exit(4)\n",
			"exited", "exited", "The script exited with code 4 before main() returned (os._exit or a C extension called exit)", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := shared.v1(t, obj{"script": tt.script})
			if r.Status != 200 || r.Body["outcome"] != tt.outcome {
				t.Fatalf("got %d %s, want outcome %s", r.Status, r.Raw, tt.outcome)
			}
			e, _ := r.Body["error"].(map[string]any)
			if e == nil {
				t.Fatalf("error is null: %s", r.Raw)
			}
			if e["type"] != tt.errType || e["message"] != tt.message || e["line"] != tt.line {
				t.Errorf("error = %v, want type %q message %q line %v", e, tt.errType, tt.message, tt.line)
			}
			tb, _ := e["traceback"].(string)
			if tt.name == "syntax error" {
				if !strings.Contains(tb, "line 2") || !strings.Contains(tb, "SyntaxError") {
					t.Errorf("traceback = %q", tb)
				}
			} else if tb != tt.traceback {
				t.Errorf("traceback:\n%s\nwant:\n%s", tb, tt.traceback)
			}
			if r.Body["result"] != nil {
				t.Errorf("result = %v, want null", r.Body["result"])
			}
		})
	}
}

func TestV1TimeoutAndUsage(t *testing.T) {
	r := shared.v1(t, obj{"script": "import time\ndef main():\n    print('started', flush=True)\n    time.sleep(10)\n", "timeout": 0.5})
	if r.Body["outcome"] != "timeout" || get(r.Body, "error", "type") != "timeout" || r.Body["stdout"] != "started\n" {
		t.Errorf("timeout: %s", r.Raw)
	}
	if get(r.Body, "usage", "cpu_ms") != nil || get(r.Body, "usage", "memory_peak_mb") != nil {
		t.Errorf("a killed job reported usage it cannot know: %v", r.Body["usage"])
	}
	if w, _ := get(r.Body, "usage", "wall_ms").(float64); w < 500 {
		t.Errorf("wall_ms = %v for a job that ran into its 0.5 s limit", w)
	}

	// CPU time counts what the job burns, including in the processes it
	// waits for; memory the largest of them.
	r = shared.v1(t, obj{"script": "import subprocess, sys\ndef main():\n    n = 0\n    for i in range(3_000_000):\n        n += i\n" +
		"    subprocess.run([sys.executable, '-c', 'b = bytearray(300 << 20); sum(range(3_000_000))'], check=True)\n    return n\n"})
	if r.Body["outcome"] != "ok" {
		t.Fatalf("got %s", r.Raw)
	}
	cpu, _ := get(r.Body, "usage", "cpu_ms").(float64)
	mem, _ := get(r.Body, "usage", "memory_peak_mb").(float64)
	wall, _ := get(r.Body, "usage", "wall_ms").(float64)
	if cpu <= 0 || mem < 300 || wall <= 0 {
		t.Errorf("usage = %v, want cpu_ms > 0, memory_peak_mb >= 300 (the child's bytearray), wall_ms > 0", r.Body["usage"])
	}
}

func TestV1OutputStreams(t *testing.T) {
	r := shared.v1(t, obj{"script": "import sys, os\ndef main():\n    print('out')\n    print('err', file=sys.stderr)\n    os.system('echo from-shell >&2')\n    return 1\n"})
	if r.Body["stdout"] != "out\n" || r.Body["stderr"] != "err\nfrom-shell\n" ||
		r.Body["stdout_truncated"] != false || r.Body["stderr_truncated"] != false {
		t.Errorf("streams: %s", r.Raw)
	}
	// A per-request limit lowers what is kept of both streams.
	r = shared.v1(t, obj{"script": "import sys\ndef main():\n    print('x' * 100)\n    print('y' * 100, file=sys.stderr)\n", "limits": obj{"stdout_bytes": 10}})
	if r.Body["stdout"] != "xxxxxxxxxx" || r.Body["stderr"] != "yyyyyyyyyy" ||
		r.Body["stdout_truncated"] != true || r.Body["stderr_truncated"] != true || r.Header.Get("X-Stdout-Bytes") != "101" {
		t.Errorf("limited streams: %v %s", r.Header, r.Raw)
	}
}

func TestV1MemoryLimitPerRequest(t *testing.T) {
	src := "def main():\n    b = bytearray(200 << 20)\n    return len(b)\n"
	if r := shared.v1(t, obj{"script": src}); r.Body["outcome"] != "ok" {
		t.Fatalf("200 MiB under the server's limit: %s", r.Raw)
	}
	r := shared.v1(t, obj{"script": src, "limits": obj{"memory_mb": 100}})
	if r.Body["outcome"] != "memory_limit" || get(r.Body, "error", "type") != "MemoryError" ||
		get(r.Body, "error", "line") != 2.0 || !strings.Contains(get(r.Body, "error", "message").(string), "100 MiB") {
		t.Errorf("200 MiB with memory_mb 100: %s", r.Raw)
	}
}

func TestV1Files(t *testing.T) {
	csv := "a,b\n1,2\n3,4\n"
	r := shared.v1(t, obj{
		"script": "import os, pandas as pd\n" +
			"def main():\n" +
			"    df = pd.read_csv('data/in.csv')\n" +
			"    df['c'] = df.a + df.b\n" +
			"    df.to_csv('data/in.csv', index=False)\n" +
			"    os.makedirs('out/deep', exist_ok=True)\n" +
			"    open('out/deep/summary.txt', 'w').write(str(int(df.c.sum())))\n" +
			"    open('empty', 'w').close()\n" +
			"    os.symlink('/etc/passwd', 'link')\n" +
			"    return sorted(os.listdir('.'))\n",
		"files": []obj{
			{"path": "data/in.csv", "content": b64(csv)},
			{"path": "untouched.bin", "content": b64("\x00\x01\x02")},
		},
	})
	if r.Body["outcome"] != "ok" {
		t.Fatalf("got %s", r.Raw)
	}
	if diff := cmp.Diff([]any{"data", "empty", "link", "out", "untouched.bin"}, r.Body["result"]); diff != "" {
		t.Errorf("working directory (-want +got):\n%s", diff)
	}
	want := []any{
		obj{"path": "data/in.csv", "size": 18.0, "content": b64("a,b,c\n1,2,3\n3,4,7\n")},
		obj{"path": "empty", "size": 0.0, "content": ""},
		obj{"path": "out/deep/summary.txt", "size": 2.0, "content": b64("10")},
	}
	if diff := cmp.Diff(want, r.Body["files"]); diff != "" {
		t.Errorf("files out (-want +got; unchanged inputs and symlinks are not returned):\n%s", diff)
	}
	if r.Body["files_omitted"] != 0.0 {
		t.Errorf("files_omitted = %v", r.Body["files_omitted"])
	}

	// The next job's working directory is empty again.
	r = shared.v1(t, obj{"script": "import os\ndef main():\n    return os.listdir('.')\n"})
	if diff := cmp.Diff([]any{}, r.Body["result"]); diff != "" || len(r.Body["files"].([]any)) != 0 {
		t.Errorf("a later job sees %v, files %v", r.Body["result"], r.Body["files"])
	}

	// A file whose name is not UTF-8 has no JSON name: it is counted as
	// omitted, not returned under a mangled one (two of them came back as
	// one path: outside attack round 21). An input named like a plotting
	// cache, and changed, comes back like any other file.
	r = shared.v1(t, obj{
		"script": "import os\ndef main():\n" +
			"    for name in (b'report\\xff.csv', b'report\\xfe.csv'):\n" +
			"        with open(name, 'wb') as f: f.write(b'x')\n" +
			"    open('fontlist-v330.json', 'a').write('edited')\n" +
			"    open('ok.csv', 'w').write('y')\n",
		"files": []obj{{"path": "fontlist-v330.json", "content": b64("{}")}},
	})
	want = []any{
		obj{"path": "fontlist-v330.json", "size": 8.0, "content": b64("{}edited")},
		obj{"path": "ok.csv", "size": 1.0, "content": b64("y")},
	}
	if diff := cmp.Diff(want, r.Body["files"]); diff != "" || r.Body["files_omitted"] != 2.0 {
		t.Errorf("non-UTF-8 names and an edited cache-named input (-want +got):\n%s\nfiles_omitted %v", diff, r.Body["files_omitted"])
	}

	// Files a failing job wrote come back too: they help find out why.
	r = shared.v1(t, obj{"script": "def main():\n    open('log.txt', 'w').write('step 1')\n    raise RuntimeError('step 2')\n"})
	if r.Body["outcome"] != "exception" || get(r.Body, "files") == nil || len(r.Body["files"].([]any)) != 1 {
		t.Errorf("failing job's files: %s", r.Raw)
	}
}

func TestV1FileLimits(t *testing.T) {
	s := startServer(t, "--pool-size", "1", "--max-files", "2", "--max-files-bytes", "1000")
	// Out: two files at most, 1000 bytes together with the images.
	r := s.v1(t, obj{"script": "def main():\n    for i in range(4):\n        open('f%d' % i, 'w').write('x' * 10)\n    open('big', 'w').write('x' * 5000)\n"})
	files, _ := r.Body["files"].([]any)
	if r.Body["outcome"] != "ok" || len(files) != 2 || r.Body["files_omitted"] != 3.0 {
		t.Errorf("files out over the limits: %s", r.Raw)
	}
	for _, tt := range []struct {
		name   string
		files  []obj
		status int
		msg    string
	}{
		{"too many", []obj{{"path": "a", "content": ""}, {"path": "b", "content": ""}, {"path": "c", "content": ""}}, 413, "Too many files: 3 exceeds the limit of 2"},
		{"too large", []obj{{"path": "a", "content": b64(strings.Repeat("x", 1001))}}, 413, "Files too large"},
	} {
		r := s.v1(t, obj{"script": "def main():\n    return 1", "files": tt.files})
		if msg, _ := r.Body["error"].(string); r.Status != tt.status || !strings.HasPrefix(msg, tt.msg) {
			t.Errorf("%s: got %d %s, want %d %q", tt.name, r.Status, r.Raw, tt.status, tt.msg)
		}
	}
}

func TestV1BadRequests(t *testing.T) {
	ok := "def main():\n    return 1"
	tests := []struct {
		name string
		body any
		code int
		msg  string
	}{
		{"empty body", "", 400, "Empty request body"},
		{"not an object", `[1]`, 400, "Request body must be a JSON object"},
		{"invalid JSON", `{"script": `, 400, "Invalid JSON"},
		{"missing script", obj{"input": 1}, 400, `Missing required field "script"`},
		{"script not a string", obj{"script": 1}, 400, `Field "script" must be a string`},
		{"unknown field", obj{"script": ok, "timeout_s": 3}, 400, `Unknown field "timeout_s"`},
		{"timeout too long", obj{"script": ok, "timeout": 31}, 400, `Field "timeout" must be more than 0 and at most 30 seconds`},
		{"absolute path", obj{"script": ok, "files": []obj{{"path": "/etc/x", "content": ""}}}, 400, `files[0]: path "/etc/x" must be relative`},
		{"dot-dot path", obj{"script": ok, "files": []obj{{"path": "a/../../x", "content": ""}}}, 400, `files[0]: path "a/../../x" must not have ".." components`},
		{"empty component", obj{"script": ok, "files": []obj{{"path": "a//b", "content": ""}}}, 400, `files[0]: path "a//b" must not have empty`},
		{"empty path", obj{"script": ok, "files": []obj{{"path": "", "content": ""}}}, 400, `files[0]: path "" is empty`},
		{"duplicate path", obj{"script": ok, "files": []obj{{"path": "a", "content": ""}, {"path": "a", "content": ""}}}, 400, `files[1]: path "a" appears twice`},
		{"file and directory", obj{"script": ok, "files": []obj{{"path": "a", "content": ""}, {"path": "a/b", "content": ""}}}, 400, `files: "a" is both a file and the directory of "a/b"`},
		{"bad base64", obj{"script": ok, "files": []obj{{"path": "a", "content": "not base64!"}}}, 400, `files[0]: content of "a" is not valid base64`},
		{"file without content", obj{"script": ok, "files": []obj{{"path": "a"}}}, 400, `files[0] must have "path" and "content"`},
		{"memory above the server's", obj{"script": ok, "limits": obj{"memory_mb": 1025}}, 400, `Field "limits.memory_mb" must be more than 0 and at most the server's 1024`},
		{"stdout above the server's", obj{"script": ok, "limits": obj{"stdout_bytes": 2 << 20}}, 400, `Field "limits.stdout_bytes" must be more than 0 and at most the server's 1048576`},
		{"unknown limit", obj{"script": ok, "limits": obj{"cpu": 1}}, 400, `Unknown field "cpu"`},
		// Python's JSON parser in the job stops at about 1,000 levels, before
		// it has read the job's nonce (outside attack round 12: the answer
		// blamed the script for tampering with its result channel).
		{"input nested too deep", `{"script": "def main(x): return 1", "input": ` + strings.Repeat("[", 990) + strings.Repeat("]", 990) + `}`,
			400, `Field "input" is nested more than 500 deep`},
		{"input too large", fmt.Sprintf(`{"script": "def main(x): return 1", "input": "%s"}`, strings.Repeat("x", 1<<20)), 413, "Input too large"},
		{"script too large", obj{"script": ok + "\n#" + strings.Repeat("x", 1<<20)}, 413, "Script too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := shared.v1(t, tt.body)
			msg, _ := r.Body["error"].(string)
			if r.Status != tt.code || !strings.HasPrefix(msg, tt.msg) {
				t.Errorf("got %d %.300s, want %d %q", r.Status, r.Raw, tt.code, tt.msg)
			}
		})
	}
	req, _ := http.NewRequest(http.MethodGet, shared.URL+"/v1/execute", nil)
	if r := do(t, req); r.Status != 405 {
		t.Errorf("GET /v1/execute = %d %s", r.Status, r.Raw)
	}
}

// plotScript leaves two figures open and closes a third.
const plotScript = "import matplotlib.pyplot as plt\n" +
	"def main():\n" +
	"    plt.plot([1, 2, 3], [4, 1, 9])\n" +
	"    plt.title('first')\n" +
	"    plt.figure()\n" +
	"    plt.bar(['a', 'b'], [3, 5])\n" +
	"    fig = plt.figure()\n" +
	"    plt.close(fig)\n" +
	"    return len(plt.get_fignums())\n"

func checkImages(t *testing.T, r reply, want int) {
	t.Helper()
	if r.Body["outcome"] != "ok" || r.Body["result"] != float64(want) {
		t.Fatalf("plot job: %.2000s", r.Raw)
	}
	images, _ := r.Body["images"].([]any)
	if len(images) != want {
		t.Fatalf("got %d images, want %d", len(images), want)
	}
	for i, im := range images {
		png, err := base64.StdEncoding.DecodeString(get(im, "content").(string))
		if err != nil || get(im, "format") != "png" || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 1000 {
			t.Errorf("image %d is not a PNG (%d bytes, %v)", i, len(png), err)
		}
	}
	// matplotlib's own files (its font cache) are not the job's output.
	files, _ := r.Body["files"].([]any)
	for _, f := range files {
		t.Errorf("a plot job returned the file %v", get(f, "path"))
	}
}

func TestV1Images(t *testing.T) {
	checkImages(t, shared.v1(t, obj{"script": plotScript}), 2)
	// A failing job's figures come back too.
	r := shared.v1(t, obj{"script": "import matplotlib.pyplot as plt\ndef main():\n    plt.plot([1, 2])\n    raise ValueError('after the plot')\n"})
	if r.Body["outcome"] != "exception" || len(r.Body["images"].([]any)) != 1 {
		t.Errorf("failing plot job: %.500s", r.Raw)
	}
	// Nothing to configure: pyplot uses the non-interactive backend.
	// (matplotlib 3.6 names it "agg", 3.10 "Agg".)
	r = shared.v1(t, obj{"script": "import matplotlib\ndef main():\n    return matplotlib.get_backend().lower()\n"})
	if r.Body["result"] != "agg" {
		t.Errorf("backend = %v", r.Body["result"])
	}
}

// TestV1InSetups: figures, files in and out and the limits work under every
// confinement: namespaces and basic, the server as root and as uid 10001.
func TestV1InSetups(t *testing.T) {
	for _, su := range setups {
		t.Run(su.name, func(t *testing.T) {
			s := startSetup(t, su, nil, "--pool-size", "1")
			checkImages(t, s.v1(t, obj{"script": plotScript}), 2)
			r := s.v1(t, obj{"script": "def main(n):\n    open('out/copy.txt', 'w').write(open('in/a.txt').read() * n)\n",
				"input": 2, "files": []obj{{"path": "in/a.txt", "content": b64("ab")}, {"path": "out/.keep", "content": ""}}})
			want := []any{obj{"path": "out/copy.txt", "size": 4.0, "content": b64("abab")}}
			if diff := cmp.Diff(want, r.Body["files"]); r.Body["outcome"] != "ok" || diff != "" {
				t.Errorf("files (-want +got):\n%s\n%.500s", diff, r.Raw)
			}
			r = s.v1(t, obj{"script": "def main():\n    return len(bytearray(200 << 20))\n", "limits": obj{"memory_mb": 100}})
			if r.Body["outcome"] != "memory_limit" {
				t.Errorf("memory_mb 100: %.500s", r.Raw)
			}
		})
	}
}

func TestV1ImagesColdMode(t *testing.T) {
	s := startServer(t, "--pool-size", "0")
	checkImages(t, s.v1(t, obj{"script": plotScript}), 2)
}

func TestV1SeedEndpointUnchanged(t *testing.T) {
	// The seed body stays byte for byte what it was, v1 or not beside it.
	r := shared.execute(t, script("import sys\ndef main():\n    print('hi')\n    print('e', file=sys.stderr)\n    open('f', 'w').write('x')\n    return 1/0"))
	if want := `{"error":"ZeroDivisionError: division by zero","stdout":"hi"}` + "\n"; r.Raw != want {
		t.Errorf("seed body = %q, want %q", r.Raw, want)
	}
	if ms, err := strconv.ParseFloat(r.Header.Get("X-Execution-Wall-Ms"), 64); err != nil || ms <= 0 {
		t.Errorf("X-Execution-Wall-Ms = %q", r.Header.Get("X-Execution-Wall-Ms"))
	}
	r = shared.execute(t, script("def main(x):\n    return x"))
	if want := `{"error":"TypeError: main() missing 1 required positional argument: 'x'","stdout":""}` + "\n"; r.Raw != want {
		t.Errorf("seed body = %q, want %q", r.Raw, want)
	}
}

func TestV1APIKeys(t *testing.T) {
	s := startServerAs(t, -1, []string{"PYEXEC_API_KEYS=k1"}, "--pool-size", "1")
	if r := s.v1(t, obj{"script": "def main():\n    return 1"}); r.Status != 401 || r.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("without a key: %d %s", r.Status, r.Raw)
	}
	s.apiKey = "k1"
	if r := s.v1(t, obj{"script": "def main():\n    return 1"}); r.Status != 200 || r.Body["result"] != 1.0 {
		t.Errorf("with a key: %d %s", r.Status, r.Raw)
	}
}

func TestV1GoClient(t *testing.T) {
	c := client.New(shared.URL, "")
	c.HTTPClient = &http.Client{Transport: validating{t}}
	input, _ := client.InputValue(map[string]any{"scale": 2})
	res, err := c.Execute(context.Background(), client.Request{
		Script: "import pandas as pd, matplotlib.pyplot as plt\n" +
			"def main(opts):\n" +
			"    df = pd.read_csv('in.csv')\n" +
			"    df['y'] = df.x * opts['scale']\n" +
			"    df.to_csv('out.csv', index=False)\n" +
			"    df.plot(x='x', y='y')\n" +
			"    return int(df.y.sum())\n",
		Input:   input,
		Files:   []client.File{{Path: "in.csv", Content: []byte("x\n1\n2\n3\n")}},
		Timeout: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || string(res.Result) != "12" || len(res.Files) != 1 || string(res.Files[0].Content) != "x,y\n1,2\n2,4\n3,6\n" ||
		len(res.Images) != 1 || !bytes.HasPrefix(res.Images[0].Content, []byte("\x89PNG")) || res.Usage.CPUMillis == nil {
		t.Errorf("got %+v", res)
	}
	res, err = c.Execute(context.Background(), client.Request{Script: "def main():\n    return [][1]\n"})
	if err != nil || res.OK() || res.Error == nil || res.Error.Error() != "IndexError: list index out of range (line 2)" {
		t.Errorf("failing script: %+v %v", res, err)
	}
	_, err = c.Execute(context.Background(), client.Request{Script: "def main(): return 1", Files: []client.File{{Path: "../x"}}})
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 {
		t.Errorf("bad path: %v", err)
	}
	if err := c.Health(context.Background()); err != nil {
		t.Error(err)
	}
}

func TestV1GoClientAPIKey(t *testing.T) {
	s := startServerAs(t, -1, []string{"PYEXEC_API_KEYS=secret"}, "--pool-size", "1")
	c := client.New(s.URL, "wrong")
	c.HTTPClient = &http.Client{Transport: validating{t}}
	_, err := c.Execute(context.Background(), client.Request{Script: "def main(): return 1"})
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
		t.Errorf("wrong key: %v", err)
	}
	c.APIKey = "secret"
	if res, err := c.Execute(context.Background(), client.Request{Script: "def main(): return 1"}); err != nil || !res.OK() {
		t.Errorf("right key: %+v %v", res, err)
	}
}

// pyexecBinary builds cmd/pyexec once, for every test and every -count
// round; TestMain removes it.
var pyexecBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "pyexec-e2e-")
	if err != nil {
		return "", err
	}
	pyexecDir.Store(&dir)
	bin := filepath.Join(dir, "pyexec")
	out, err := exec.Command("go", "build", "-race", "-o", bin, "../pyexec").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building pyexec: %v\n%s", err, out)
	}
	return bin, nil
})

func TestV1CLI(t *testing.T) {
	bin, err := pyexecBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "job.py"), []byte("import matplotlib.pyplot as plt\n"+
		"def main(cfg):\n    rows = open('data.csv').read().split()\n    open('report.txt', 'w').write(cfg['title'] + ': ' + str(len(rows)))\n"+
		"    plt.plot(range(len(rows)))\n    return len(rows)\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "data.csv"), []byte("a\nb\nc\n"), 0o644)
	pyexec := func(stdin string, args ...string) (int, string, string) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = []string{"PYEXEC_SERVER=" + shared.URL}
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), out.String(), errb.String()
	}
	code, stdout, stderr := pyexec("", "run", "--input", `{"title": "rows"}`, "--file", "data.csv", "--out", "out", "job.py")
	var printed map[string]any
	if code != 0 || json.Unmarshal([]byte(stdout), &printed) != nil || printed["result"] != 3.0 {
		t.Fatalf("pyexec run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "out/files/report.txt")); err != nil || string(b) != "rows: 3" {
		t.Errorf("report.txt: %q %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "out/images/figure-1.png")); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Errorf("figure-1.png: %v", err)
	}
	if code, stdout, _ := pyexec("def main():\n    return 1/0\n", "run", "-"); code != 1 || !strings.Contains(stdout, `"ZeroDivisionError"`) {
		t.Errorf("failing script from stdin: exit %d\n%s", code, stdout)
	}
	if code, stdout, _ := pyexec("", "health"); code != 0 || stdout != "healthy\n" {
		t.Errorf("pyexec health: exit %d %q", code, stdout)
	}
}

// TestV1OutputsBounded: whatever a job leaves in its working directory,
// collecting it is bounded and never blocks: fifos, symlink loops, deep
// trees, thousands of files, a file bigger than the budget.
func TestV1OutputsBounded(t *testing.T) {
	r := shared.v1(t, obj{"script": "import os\n" +
		"def main():\n" +
		"    os.mkfifo('fifo')\n" +
		"    os.symlink('loop', 'loop')\n" +
		"    os.symlink('/usr', 'usr')\n" +
		"    d = '.'\n" +
		"    for i in range(200):\n" +
		"        d = os.path.join(d, 'd')\n" +
		"    os.makedirs(d)\n" +
		"    open(os.path.join(d, 'deep.txt'), 'w').write('deep')\n" +
		"    for i in range(1500):\n" +
		"        open('f%04d' % i, 'w').close()\n" +
		"    with open('big', 'wb') as f:\n" +
		"        f.truncate(20 << 20)\n" +
		"    return 1\n"})
	files, _ := r.Body["files"].([]any)
	if r.Body["outcome"] != "ok" || len(files) != 100 || r.Body["files_omitted"] != 1402.0 {
		t.Fatalf("got outcome %v, %d files, %v omitted; want ok, 100, 1402 (1500 + deep + big - 100)",
			r.Body["outcome"], len(files), r.Body["files_omitted"])
	}
	for _, f := range files {
		if p := get(f, "path").(string); p == "fifo" || p == "loop" || strings.HasPrefix(p, "usr") {
			t.Errorf("returned %q", p)
		}
	}
}
