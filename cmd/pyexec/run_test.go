package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeServer answers POST /v1/execute with body and records the request.
func fakeServer(t *testing.T, status int, body string) (*httptest.Server, *map[string]any) {
	t.Helper()
	got := new(map[string]any)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
			io.WriteString(w, `{"status":"healthy"}`)
			return
		case "/v1/execute":
		default:
			http.NotFound(w, r)
			return
		}
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, got)
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func pyexec(t *testing.T, env map[string]string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errb, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

const okResp = `{"outcome":"ok","result":42,"error":null,"stdout":"hi\n","stdout_truncated":false,"stderr":"","stderr_truncated":false,` +
	`"usage":{"wall_ms":1.5,"cpu_ms":2,"memory_peak_mb":60.5},` +
	`"files":[{"path":"out/r.txt","size":2,"content":"aGk="},{"path":"../escape","size":1,"content":"eA=="}],"files_omitted":0,` +
	`"images":[{"format":"png","content":"iVBORw=="}],"images_omitted":0}`

const failResp = `{"outcome":"exception","result":null,"error":{"type":"ValueError","message":"no","line":1,"traceback":"x"},"stdout":"",` +
	`"stdout_truncated":false,"stderr":"","stderr_truncated":false,"usage":{"wall_ms":1,"cpu_ms":1,"memory_peak_mb":1},` +
	`"files":[],"files_omitted":0,"images":[],"images_omitted":0}`

func TestRun(t *testing.T) {
	srv, got := fakeServer(t, 200, okResp)
	dir := t.TempDir()
	script := filepath.Join(dir, "s.py")
	os.WriteFile(script, []byte("def main(d):\n    return 42\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "in.json"), []byte(` {"k": [1, 2]} `), 0o644)
	data := filepath.Join(dir, "data.csv")
	os.WriteFile(data, []byte("a\n1\n"), 0o644)
	out := filepath.Join(dir, "out")

	code, stdout, stderr := pyexec(t, map[string]string{"PYEXEC_SERVER": srv.URL}, "",
		"run", "--input", "@"+filepath.Join(dir, "in.json"), "--file", data, "--timeout", "2", "--out", out, script)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	want := map[string]any{"script": "def main(d):\n    return 42\n", "timeout": 2.0, "input": map[string]any{"k": []any{1.0, 2.0}},
		"files": []any{map[string]any{"path": "data.csv", "content": "YQoxCg=="}}}
	if diff := cmp.Diff(want, *got); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	var printed map[string]any
	if err := json.Unmarshal([]byte(stdout), &printed); err != nil || printed["result"] != 42.0 || printed["outcome"] != "ok" {
		t.Errorf("printed %q (%v)", stdout, err)
	}
	if strings.Contains(stdout, "aGk=") {
		t.Errorf("printed base64 content without --raw: %s", stdout)
	}
	if b, err := os.ReadFile(filepath.Join(out, "files/out/r.txt")); err != nil || string(b) != "hi" {
		t.Errorf("files/out/r.txt: %q %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(out, "images/figure-1.png")); err != nil || string(b) != "\x89PNG" {
		t.Errorf("images/figure-1.png: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "escape")); err == nil || !strings.Contains(stderr, `skipped a returned file with the path "../escape"`) {
		t.Errorf("a returned path outside --out was written, or not reported: %s", stderr)
	}
}

func TestRunStdinAndInlineInput(t *testing.T) {
	srv, got := fakeServer(t, 200, failResp)
	code, _, stderr := pyexec(t, nil, "def main(x):\n    raise ValueError('no')\n", "run", "--server", srv.URL, "--input", `"text"`, "-")
	if code != 1 {
		t.Errorf("a failed script: exit %d, want 1 (%s)", code, stderr)
	}
	if (*got)["input"] != "text" || (*got)["script"] != "def main(x):\n    raise ValueError('no')\n" {
		t.Errorf("request %v", *got)
	}
	if _, ok := (*got)["timeout"]; ok {
		t.Errorf("sent a timeout nobody asked for: %v", *got)
	}
}

func TestRunExitCodes(t *testing.T) {
	busy, _ := fakeServer(t, 400, `{"error":"Unknown field","stdout":""}`)
	dir := t.TempDir()
	script := filepath.Join(dir, "s.py")
	os.WriteFile(script, []byte("def main(): return 1"), 0o644)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "Usage"},
		{"unknown command", []string{"fly"}, `unknown command "fly"`},
		{"no script", []string{"run"}, "want exactly one script"},
		{"two scripts", []string{"run", script, script}, "want exactly one script"},
		{"missing script", []string{"run", filepath.Join(dir, "nope.py")}, "reading the script"},
		{"bad input", []string{"run", "--input", "{", script}, "--input is not valid JSON"},
		{"bare word input", []string{"run", "--input", "text", script}, "--input is not valid JSON"},
		{"missing input file", []string{"run", "--input", "@" + filepath.Join(dir, "nope.json"), script}, "reading --input"},
		{"missing file", []string{"run", "--file", filepath.Join(dir, "nope.csv"), script}, "--file"},
		{"same file twice", []string{"run", "--file", script, "--file", script, script}, "two files would be"},
		{"negative timeout", []string{"run", "--timeout", "-1", script}, "--timeout must not be negative"},
		{"unknown flag", []string{"run", "--nope", script}, "flag provided but not defined"},
		{"refused request", []string{"run", "--server", busy.URL, script}, "400 Bad Request: Unknown field"},
		{"no server", []string{"run", "--server", "http://127.0.0.1:1", script}, "connect"},
		{"health of no server", []string{"health", "--server", "http://127.0.0.1:1"}, "connect"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := pyexec(t, nil, "", tt.args...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, tt.want)
			}
		})
	}
}

func TestHealthCommand(t *testing.T) {
	srv, _ := fakeServer(t, 200, "")
	if code, out, _ := pyexec(t, map[string]string{"PYEXEC_SERVER": srv.URL}, "", "health"); code != 0 || out != "healthy\n" {
		t.Errorf("health: %d %q", code, out)
	}
}

func TestJobPath(t *testing.T) {
	for in, want := range map[string]string{
		"data.csv": "data.csv", "./d/x.csv": "d/x.csv", "/tmp/a/b.csv": "b.csv", "../up.csv": "up.csv", "a/../b": "b",
	} {
		if got := jobPath(in); got != want {
			t.Errorf("jobPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestHostileServerCannotDriveTheTerminal: what a server says (an error, a
// body that is not JSON, a job's output) reaches the terminal with escape
// sequences, C1 controls and bidirectional overrides escaped (outside
// attack round 13: a server set the window title, wrote the clipboard and
// printed a fake "healthy" over a cleared screen).
func TestHostileServerCannotDriveTheTerminal(t *testing.T) {
	evil := "\x1b]0;owned\x07\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b[2J\u009b31m\u202e"
	for _, c := range []struct {
		name, body string
		status     int
		args       []string
	}{
		{"error", `{"error":"` + strings.ReplaceAll(strings.ReplaceAll(evil, "\x1b", `\u001b`), "\x07", `\u0007`) + `","stdout":""}`, 400, []string{"run", "-"}},
		{"not JSON", evil, 502, []string{"run", "-"}},
		{"job's stdout", strings.Replace(okResp, `"stdout":"hi\n"`, `"stdout":"\u001b[2J\u009b31m\u202e"`, 1), 200, []string{"run", "-"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, _ := fakeServer(t, c.status, c.body)
			_, out, errOut := pyexec(t, map[string]string{"PYEXEC_SERVER": srv.URL}, "def main(): pass", c.args...)
			for _, bad := range []string{"\x1b", "\x07", "\u009b", "\u202e"} {
				if strings.Contains(out+errOut, bad) {
					t.Errorf("%q reached the terminal: stdout %q, stderr %q", bad, out, errOut)
				}
			}
			if !strings.Contains(out+errOut, `\u001b`) && !strings.Contains(out+errOut, `\u009b`) {
				t.Errorf("the escapes are not shown: stdout %q, stderr %q", out, errOut)
			}
		})
	}
}

func TestTerminalSafe(t *testing.T) {
	for in, want := range map[string]string{
		"plain text\n\tindented": "plain text\n\tindented",
		"héllo 🐍 \uFFFD":         "héllo 🐍 \uFFFD",
		"\x1b[31mred":            `\u001b[31mred`,
		"a\rb\x7fc":              `a\u000db\u007fc`,
		"\u009b1m \u202eevil":    `\u009b1m \u202eevil`,
		"bad \x9b byte":          `bad \u009b byte`,
	} {
		if got := terminalSafe(in); got != want {
			t.Errorf("terminalSafe(%q) = %q, want %q", in, got, want)
		}
	}
}
