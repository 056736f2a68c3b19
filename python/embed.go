// Package python holds the worker program that runs inside each sandbox.
//
// The Go server embeds worker.py so that the binary is self-contained: at
// start-up it writes the file to a private directory and hands that path to
// the sandbox, which exposes it read-only to the interpreter.
package python

import _ "embed"

// Worker is the source of worker.py.
//
//go:embed worker.py
var Worker []byte
