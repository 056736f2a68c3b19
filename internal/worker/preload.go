package worker

import (
	"context"
	"fmt"
	"regexp"
	"strings"
)

// DefaultPreload is what a warm template imports when Config.Preload is nil.
var DefaultPreload = []string{"numpy", "pandas"}

// PythonInfo describes the jobs' Python, as the template found it.
type PythonInfo struct {
	Version string `json:"version"` // 3.13.5
	// Packages maps distribution names (numpy, scikit-learn) to the
	// installed versions of the scientific packages the worker knows; a
	// package that is not installed is absent.
	Packages map[string]string `json:"packages"`
	// Preload lists the modules each warm template imports before forking.
	Preload []string `json:"preload"`
}

var moduleName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// ParsePreload parses a comma-separated list of module names ("numpy,
// pandas, matplotlib"); "" and "none" preload nothing.
func ParsePreload(s string) ([]string, error) {
	out := []string{}
	if strings.TrimSpace(s) == "none" {
		return out, nil
	}
	seen := map[string]bool{}
	for _, m := range strings.Split(s, ",") {
		m = strings.TrimSpace(m)
		if m == "" || seen[m] {
			continue
		}
		if !moduleName.MatchString(m) {
			return nil, fmt.Errorf("%q is not a Python module name", m)
		}
		seen[m] = true
		out = append(out, m)
	}
	return out, nil
}

func (c Config) preload() []string {
	if c.Preload == nil {
		return DefaultPreload
	}
	return c.Preload
}

// usesPreload reports whether a job should go to the warm child: its script
// names a preloaded module's top-level package.
func (c Config) usesPreload(script string) bool {
	for _, m := range c.preload() {
		top, _, _ := strings.Cut(m, ".")
		if strings.Contains(script, top) {
			return true
		}
	}
	return false
}

// Probe starts one template in the sandbox that reports the interpreter's
// and the packages' versions and exits, without importing anything. (A warm
// template that cannot import a preloaded module fails to start, with
// Python's reason: the pool, and so the server, refuses to start.)
func Probe(ctx context.Context, cfg Config) (*PythonInfo, error) {
	cfg.probe, cfg.Warm, cfg.OneShot = true, false, true
	w, err := Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	if w.python == nil {
		return nil, fmt.Errorf("%w: the probe's ready frame has no python section", ErrProtocol)
	}
	return w.python, nil
}
