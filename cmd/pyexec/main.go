// Command pyexec runs Python scripts on a python-executor server.
//
//	pyexec run [--server URL] [--input JSON|@file] [--file PATH]... [--timeout S] [--out DIR] script.py|-
//	pyexec health [--server URL]
//
// run prints the server's response as JSON (without the base64 content of
// files and images: --out writes them), and exits 0 when main returned, 1
// when the script failed, 2 on a usage or transport error or a refused
// request. --server defaults to $PYEXEC_SERVER, then http://localhost:8080;
// the API key comes from $PYEXEC_API_KEY (or --api-key).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
