package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/python-executor/python-executor/internal/client"
)

// Exit codes.
const (
	exitOK     = 0 // main returned
	exitScript = 1 // the script failed (any other outcome)
	exitUsage  = 2 // bad usage, transport error, refused request
)

const usage = `Usage:
  pyexec run [flags] script.py|-     run a script (- reads it from stdin)
  pyexec health [flags]              check that the server is up

Exit status: 0 when main() returned, 1 when the script failed, 2 on a usage
or transport error or a request the server refused.
`

// files collects repeated --file flags.
type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

// run is pyexec without the process around it, for tests.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("pyexec "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := getenv("PYEXEC_SERVER")
	if server == "" {
		server = client.DefaultServer
	}
	fs.StringVar(&server, "server", server, "server URL [$PYEXEC_SERVER]")
	apiKey := fs.String("api-key", getenv("PYEXEC_API_KEY"), "API key; prefer $PYEXEC_API_KEY, which does not show in ps")
	switch cmd {
	case "health":
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitOK
			}
			return exitUsage
		}
		if fs.NArg() != 0 {
			fmt.Fprintln(stderr, "pyexec health: takes no arguments")
			return exitUsage
		}
		c := client.New(server, *apiKey)
		c.MaxRetries = -1
		if err := c.Health(ctx); err != nil {
			fmt.Fprintln(stderr, "pyexec:", terminalSafe(err.Error()))
			return exitUsage
		}
		fmt.Fprintln(stdout, "healthy")
		return exitOK
	case "run":
	default:
		fmt.Fprintf(stderr, "pyexec: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	input := fs.String("input", "", "JSON value passed to main(input), or @file to read it from a file")
	var inFiles files
	fs.Var(&inFiles, "file", "file to put in the job's working directory, at its own relative path or, when absolute or outside, its base name (repeatable)")
	timeout := fs.Float64("timeout", 0, "time limit in seconds (0: the server's default)")
	out := fs.String("out", "", "directory to write the files (DIR/files/...) and images (DIR/images/figure-N.png) the job returns")
	raw := fs.Bool("raw", false, "print the base64 content of files and images too")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "pyexec run: want exactly one script (a path, or - for stdin)")
		return exitUsage
	}
	req, err := buildRequest(fs.Arg(0), *input, inFiles, *timeout, stdin)
	if err != nil {
		fmt.Fprintln(stderr, "pyexec run:", err)
		return exitUsage
	}
	c := client.New(server, *apiKey)
	res, err := c.Execute(ctx, req)
	if err != nil {
		fmt.Fprintln(stderr, "pyexec:", terminalSafe(err.Error()))
		return exitUsage
	}
	if *out != "" {
		if err := writeOutputs(*out, res, stderr); err != nil {
			fmt.Fprintln(stderr, "pyexec run: writing outputs:", terminalSafe(err.Error()))
			return exitUsage
		}
	}
	if err := printResult(stdout, res, *raw); err != nil {
		fmt.Fprintln(stderr, "pyexec run:", err)
		return exitUsage
	}
	if !res.OK() {
		return exitScript
	}
	return exitOK
}

func buildRequest(script, input string, inFiles []string, timeout float64, stdin io.Reader) (client.Request, error) {
	var req client.Request
	var src []byte
	var err error
	if script == "-" {
		src, err = io.ReadAll(stdin)
	} else {
		src, err = os.ReadFile(script)
	}
	if err != nil {
		return req, fmt.Errorf("reading the script: %w", err)
	}
	req.Script = string(src)
	if timeout < 0 {
		return req, errors.New("--timeout must not be negative")
	}
	req.Timeout = timeout
	if input != "" {
		b := []byte(input)
		if name, ok := strings.CutPrefix(input, "@"); ok {
			if b, err = os.ReadFile(name); err != nil {
				return req, fmt.Errorf("reading --input: %w", err)
			}
		}
		b = bytes.TrimSpace(b)
		if !json.Valid(b) {
			return req, errors.New("--input is not valid JSON (quote strings: --input '\"text\"')")
		}
		req.Input = b
	}
	seen := map[string]bool{}
	for _, f := range inFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return req, fmt.Errorf("--file: %w", err)
		}
		p := jobPath(f)
		if seen[p] {
			return req, fmt.Errorf("--file: two files would be %q in the job", p)
		}
		seen[p] = true
		req.Files = append(req.Files, client.File{Path: p, Content: data})
	}
	return req, nil
}

// jobPath is where a local file goes in the job's working directory: its
// own path when that is relative and stays inside, else its base name.
func jobPath(local string) string {
	p := filepath.ToSlash(filepath.Clean(local))
	if filepath.IsAbs(local) || p == ".." || strings.HasPrefix(p, "../") {
		return filepath.Base(local)
	}
	return p
}

// writeOutputs writes the job's files under dir/files and its images under
// dir/images. Paths come from the job, which ran untrusted code: each is
// checked, and os.Root keeps every write inside dir, symlinks included.
func writeOutputs(dir string, res *client.Result, stderr io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	write := func(name string, data []byte) error {
		if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
			return err
		}
		return root.WriteFile(name, data, 0o644)
	}
	for _, f := range res.Files {
		p := path.Clean(f.Path)
		if f.Path == "" || path.IsAbs(p) || p == ".." || strings.HasPrefix(p, "../") {
			fmt.Fprintf(stderr, "pyexec: skipped a returned file with the path %q\n", f.Path)
			continue
		}
		if err := write(path.Join("files", p), f.Content); err != nil {
			return err
		}
	}
	for i, im := range res.Images {
		if err := write(fmt.Sprintf("images/figure-%d.%s", i+1, imageExt(im.Format)), im.Content); err != nil {
			return err
		}
	}
	if res.FilesOmitted > 0 || res.ImagesOmitted > 0 {
		fmt.Fprintf(stderr, "pyexec: the server left out %d files and %d images (over its limits)\n", res.FilesOmitted, res.ImagesOmitted)
	}
	return nil
}

func imageExt(format string) string {
	if format == "png" {
		return "png"
	}
	return "bin"
}

// printResult writes the response as indented JSON; without raw, files and
// images show their path and size instead of their base64 content.
func printResult(w io.Writer, res *client.Result, raw bool) error {
	var v any = res
	if !raw {
		type file struct {
			Path string `json:"path"`
			Size int64  `json:"size"`
		}
		type image struct {
			Format string `json:"format"`
			Size   int    `json:"size"`
		}
		fs := make([]file, 0, len(res.Files))
		for _, f := range res.Files {
			fs = append(fs, file{f.Path, int64(len(f.Content))})
		}
		ims := make([]image, 0, len(res.Images))
		for _, im := range res.Images {
			ims = append(ims, image{im.Format, len(im.Content)})
		}
		v = struct {
			*client.Result
			Files  []file  `json:"files"`
			Images []image `json:"images"`
		}{res, fs, ims}
	}
	var buf strings.Builder
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := io.WriteString(w, terminalSafe(buf.String()))
	return err
}
