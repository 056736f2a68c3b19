package main

import (
	"strings"
	"testing"
)

// API keys on a command line are readable by every process of the host
// (/proc/<pid>/cmdline): the server takes them from the environment or a file.
func TestAPIKeysNeverFromTheCommandLine(t *testing.T) {
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }
	if _, err := parseConfig([]string{"--api-keys", "k1"}, env(nil)); err == nil || !strings.Contains(err.Error(), "PYEXEC_API_KEYS") {
		t.Errorf("--api-keys on the command line: got %v, want a refusal naming PYEXEC_API_KEYS", err)
	}
	c, err := parseConfig(nil, env(map[string]string{"PYEXEC_API_KEYS": "k1,k2"}))
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := c.apiKeys(); err != nil || len(keys) != 2 {
		t.Errorf("keys from the environment: %v, %v", keys, err)
	}
}
