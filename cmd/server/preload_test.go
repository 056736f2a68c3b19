package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// inherited reports which of the modules a job finds imported before its
// own first line runs: those the template preloaded.
const inherited = "import sys\nloaded = [m for m in ('numpy', 'pandas', 'matplotlib.pyplot') if m in sys.modules]\n" +
	"def main():\n    import matplotlib\n    return [loaded, matplotlib.get_backend().lower()]\n"

func TestPreload(t *testing.T) {
	t.Run("default: numpy and pandas, not pyplot", func(t *testing.T) {
		r := shared.execute(t, script(inherited))
		if diff := cmp.Diff([]any{[]any{"numpy", "pandas"}, "agg"}, r.Body["result"]); diff != "" {
			t.Errorf("(-want +got):\n%s\n%s", diff, r.Raw)
		}
	})
	t.Run("matplotlib named", func(t *testing.T) {
		s := startServer(t, "--pool-size", "1", "--preload", "numpy,matplotlib")
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/info", nil)
		py, _ := do(t, req).Body["python"].(map[string]any)
		if diff := cmp.Diff([]any{"numpy", "matplotlib"}, py["preload"]); diff != "" {
			t.Errorf("/info python.preload (-want +got):\n%s", diff)
		}
		r := s.execute(t, script(inherited))
		if diff := cmp.Diff([]any{[]any{"numpy", "matplotlib.pyplot"}, "agg"}, r.Body["result"]); diff != "" {
			t.Errorf("(-want +got):\n%s\n%s", diff, r.Raw)
		}
		checkImages(t, s.v1(t, obj{"script": plotScript}), 2)
	})
	t.Run("none", func(t *testing.T) {
		s := startServer(t, "--pool-size", "1", "--preload", "none")
		r := s.execute(t, script(inherited))
		if diff := cmp.Diff([]any{[]any{}, "agg"}, r.Body["result"]); diff != "" {
			t.Errorf("(-want +got):\n%s\n%s", diff, r.Raw)
		}
		seed := s.execute(t, script("import pandas as pd\ndef main():\n    return len(pd.DataFrame({'a': [1, 2]}))"))
		if seed.Body["result"] != 2.0 {
			t.Errorf("pandas job without preload: %s", seed.Raw)
		}
	})
	t.Run("a module that cannot be imported stops the start-up", func(t *testing.T) {
		_, err := start("--pool-size", "1", "--preload", "numpy,no_such_module_here")
		if err == nil || !strings.Contains(err.Error(), "--preload: cannot import 'no_such_module_here': ModuleNotFoundError") {
			t.Errorf("start = %v, want a refusal naming the module", err)
		}
	})
	t.Run("not a module name", func(t *testing.T) {
		_, err := start("--preload", "numpy,os; rm -rf")
		if err == nil || !strings.Contains(err.Error(), "is not a Python module name") {
			t.Errorf("start = %v, want a refusal", err)
		}
	})
}
