package main

import (
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// pythonRoot is the jobs' root the tests use: a Debian tree that
// scripts/python-root.sh made (scripts/test.sh makes a trixie one and sets
// PYEXEC_TEST_PYTHON_ROOT), and the Python version it holds ("3.13").
func pythonRoot(t *testing.T) (root, version string) {
	t.Helper()
	root = os.Getenv("PYEXEC_TEST_PYTHON_ROOT")
	if root == "" {
		t.Skip("PYEXEC_TEST_PYTHON_ROOT is not set: scripts/test.sh builds a trixie root with scripts/python-root.sh and sets it")
	}
	if !userNamespaces() {
		t.Skip("no user namespaces on this host: a jobs' root needs namespaces isolation")
	}
	target, err := os.Readlink(filepath.Join(root, "usr/bin/python3"))
	if err != nil {
		t.Fatalf("%s is not a Python root: %v", root, err)
	}
	return root, strings.TrimPrefix(filepath.Base(target), "python")
}

// TestPythonRoot runs the seed's cases, a v1 job and the attack suite on the
// Python of another Debian release (--python-root): the worker program, the
// Landlock rules and the seccomp filter must hold on it too.
func TestPythonRoot(t *testing.T) {
	root, version := pythonRoot(t)
	s := startServer(t, "--python-root", root, "--isolation", "namespaces", "--pool-size", "1")
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/info", nil)
	info := do(t, req)
	py, _ := info.Body["python"].(map[string]any)
	if v, _ := py["version"].(string); !strings.HasPrefix(v, version+".") {
		t.Fatalf("GET /info python = %v, want the root's Python %s", info.Body["python"], version)
	}
	t.Run("seed", func(t *testing.T) { seedCases(t, s) })
	t.Run("jobs run the root's Python", func(t *testing.T) {
		r := s.execute(t, script("import sys, numpy, pandas\ndef main():\n    return [sys.version.split()[0], numpy.__version__, pandas.__version__]"))
		pkgs, _ := py["packages"].(map[string]any)
		got, _ := r.Body["result"].([]any)
		if len(got) != 3 || got[0] != py["version"] || got[1] != pkgs["numpy"] || got[2] != pkgs["pandas"] {
			t.Errorf("job sees %s, /info says %v", r.Raw, py)
		}
	})
	t.Run("v1 error info", func(t *testing.T) {
		r := s.v1(t, obj{"script": "def main(input):\n    x = 1\n    return x / input\n", "input": 0})
		ei, _ := r.Body["error"].(map[string]any)
		tb, _ := ei["traceback"].(string)
		if r.Body["outcome"] != "exception" || ei["type"] != "ZeroDivisionError" || ei["line"] != 3.0 ||
			!strings.Contains(tb, `File "<script>", line 3, in main`) {
			t.Errorf("v1 exception on the root's Python: %.1000s", r.Raw)
		}
	})
	t.Run("v1 files", func(t *testing.T) {
		r := s.v1(t, obj{"script": "import pandas as pd\ndef main():\n    pd.DataFrame({'a': [1, 2]}).to_csv('out.csv', index=False)\n    return 1\n"})
		files, _ := r.Body["files"].([]any)
		if r.Body["outcome"] != "ok" || len(files) != 1 || get(files[0], "path") != "out.csv" {
			t.Errorf("v1 file on the root's Python: %.1000s", r.Raw)
		}
	})
}

// TestPythonRootAdversarial: the attack suite against jobs on the root's
// Python.
func TestPythonRootAdversarial(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("syscall numbers in the suite are amd64's")
	}
	root, _ := pythonRoot(t)
	testAdversarial(t, setup{"namespaces/root", "namespaces", -1}, "--python-root", root)
}

// TestPythonRootNeedsNamespaces: a jobs' root cannot be given at basic
// level, where jobs see the host's filesystem: the server refuses to start.
func TestPythonRootNeedsNamespaces(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755)
	os.Symlink("/usr/bin/python3", filepath.Join(dir, "usr/bin/python3"))
	_, err := start("--python-root", dir, "--isolation", "basic")
	if err == nil || !strings.Contains(err.Error(), "python-root needs namespaces isolation") {
		t.Errorf("start at basic level with a root: %v, want a refusal", err)
	}
}
