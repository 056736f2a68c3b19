package api

import (
	"bytes"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog/hlog"

	"github.com/python-executor/python-executor/internal/worker"
)

// OpenAPI is the OpenAPI 3.1 document of every endpoint, served as
// GET /openapi.json. The end-to-end tests validate every response they
// receive against it.
//
//go:embed openapi.json
var OpenAPI []byte

func (s *server) openapi(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(OpenAPI)))
	w.Write(OpenAPI)
}

// v1Request is POST /v1/execute's body.
type v1Request struct {
	Script  *string         `json:"script"`
	Timeout *float64        `json:"timeout"`
	Input   json.RawMessage `json:"input"`
	Files   []v1File        `json:"files"`
	Limits  *struct {
		MemoryMB    *int64 `json:"memory_mb"`
		StdoutBytes *int64 `json:"stdout_bytes"`
	} `json:"limits"`
}

type v1File struct {
	Path    *string `json:"path"`
	Content *string `json:"content"`
}

// v1Response is POST /v1/execute's body when the script ran (status 200).
// Every member is always present, so that clients need no guesswork.
type v1Response struct {
	Outcome         string            `json:"outcome"`
	Result          json.RawMessage   `json:"result"`
	Error           *worker.ErrorInfo `json:"error"`
	Stdout          string            `json:"stdout"`
	StdoutTruncated bool              `json:"stdout_truncated"`
	Stderr          string            `json:"stderr"`
	StderrTruncated bool              `json:"stderr_truncated"`
	Usage           v1Usage           `json:"usage"`
	Files           []worker.File     `json:"files"`
	FilesOmitted    int               `json:"files_omitted"`
	Images          []worker.Image    `json:"images"`
	ImagesOmitted   int               `json:"images_omitted"`
}

type v1Usage struct {
	WallMS       float64  `json:"wall_ms"`
	CPUMS        *int64   `json:"cpu_ms"`
	MemoryPeakMB *float64 `json:"memory_peak_mb"`
}

func (s *server) v1Execute(w http.ResponseWriter, r *http.Request) {
	job, err := s.decodeV1(r)
	if err != nil {
		var bad *badRequest
		errors.As(err, &bad)
		setOutcome(r, "bad_request")
		writeError(w, bad.status, bad.msg, "")
		return
	}
	log := hlog.FromRequest(r)
	log.Debug().Str("script", job.Script).Dur("timeout", job.Timeout).Int("files", len(job.V1.Files)).
		Bool("stream", wantsStream(r)).Msg("v1 job")
	if wantsStream(r) {
		s.v1Stream(w, r, job)
		return
	}
	out, ok := s.run(w, r, job)
	if !ok {
		return
	}
	if out.StdoutTruncated {
		w.Header().Set("X-Stdout-Bytes", strconv.FormatInt(out.StdoutBytes, 10))
	}
	writeJSON(w, http.StatusOK, v1Body(out))
}

// v1Body is POST /v1/execute's body for a job that ran, streamed or not.
func v1Body(out worker.Outcome) v1Response {
	v := out.V1
	if v == nil { // a runner that ignores V1 (tests' fakes)
		v = &worker.V1Outcome{Files: []worker.File{}, Images: []worker.Image{}}
		if out.Kind != worker.KindOK {
			v.Error = &worker.ErrorInfo{Type: string(out.Kind), Message: out.Error}
		}
	}
	resp := v1Response{
		Outcome:         string(out.Kind),
		Result:          json.RawMessage("null"),
		Error:           v.Error,
		Stdout:          out.Stdout,
		StdoutTruncated: out.StdoutTruncated,
		Stderr:          out.Stderr,
		StderrTruncated: out.StderrTruncated,
		Usage: v1Usage{
			WallMS:       math.Round(float64(out.Elapsed.Microseconds())/10) / 100, // as wallMS
			CPUMS:        v.CPUMillis,
			MemoryPeakMB: v.MemoryPeakMB,
		},
		Files:         v.Files,
		FilesOmitted:  v.FilesOmitted,
		Images:        v.Images,
		ImagesOmitted: v.ImagesOmitted,
	}
	if out.Kind == worker.KindOK {
		resp.Result = out.Result
	}
	return resp
}

// maxInputDepth is how deeply a v1 request's input may nest: the job
// process parses the job with Python's json module, which stops at its
// recursion limit (about 1,000 levels, which Python 3.12 and later do not
// let a program raise) before it has read the job's nonce, so deeper input
// would fail as a result the server cannot trust.
const maxInputDepth = 500

// jsonDepth returns how deeply valid JSON nests arrays and objects.
func jsonDepth(raw []byte) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for _, c := range raw {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

// v1BodyLimit is the largest POST /v1/execute body: room for JSON escaping
// of the script and the input, and base64 files.
func (s *server) v1BodyLimit() int64 {
	return 12*s.cfg.MaxScriptBytes + s.cfg.MaxFilesBytes/3*4 + int64(s.cfg.MaxFiles)*1100 + 64<<10
}

// decodeV1 reads and checks a POST /v1/execute body. Unlike the seed
// endpoint it rejects unknown fields, so that a misspelt option is an error
// rather than silently ignored.
func (s *server) decodeV1(r *http.Request) (worker.Job, error) {
	bad := func(format string, a ...any) (worker.Job, error) {
		return worker.Job{}, &badRequest{http.StatusBadRequest, fmt.Sprintf(format, a...)}
	}
	tooLarge := func(format string, a ...any) (worker.Job, error) {
		return worker.Job{}, &badRequest{http.StatusRequestEntityTooLarge, fmt.Sprintf(format, a...)}
	}
	body, release, err := s.readBody(r, s.v1BodyLimit())
	defer release()
	switch {
	case errors.Is(err, errBodyTooLarge):
		return tooLarge("Request too large: the limits are %d bytes of script, %d of input and %d bytes in %d files",
			s.cfg.MaxScriptBytes, s.cfg.MaxScriptBytes, s.cfg.MaxFilesBytes, s.cfg.MaxFiles)
	case err != nil:
		return bad("Could not read the request body")
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return bad(`Empty request body: send {"script": "..."}`)
	}
	if body[0] != '{' {
		return bad(`Request body must be a JSON object: {"script": "..."}`)
	}
	var req v1Request
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			want := map[string]string{"script": "string", "timeout": "number of seconds", "files": "list of {\"path\", \"content\"}",
				"limits": "object", "limits.memory_mb": "whole number", "limits.stdout_bytes": "whole number"}[typeErr.Field]
			if want == "" {
				want = "string"
			}
			return bad("Field %q must be a %s", typeErr.Field, want)
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return bad("Unknown field %s: POST /v1/execute takes script, timeout, input, files and limits", f)
		}
		return bad("Invalid JSON in request body: %s", err.Error())
	}
	if dec.More() {
		return bad("Invalid JSON in request body: more than one value")
	}
	if req.Script == nil {
		return bad(`Missing required field "script"`)
	}
	if n := int64(len(*req.Script)); n > s.cfg.MaxScriptBytes {
		return tooLarge("Script too large: %d bytes exceeds the script limit of %d bytes", n, s.cfg.MaxScriptBytes)
	}
	job := worker.Job{Script: *req.Script, Timeout: s.cfg.DefaultTimeout, V1: &worker.V1Job{}}
	if req.Timeout != nil {
		t := *req.Timeout
		if math.IsNaN(t) || t <= 0 || t > s.cfg.MaxTimeout.Seconds() {
			return bad("Field \"timeout\" must be more than 0 and at most %g seconds", s.cfg.MaxTimeout.Seconds())
		}
		job.Timeout = time.Duration(t * float64(time.Second))
	}
	if req.Input != nil {
		if n := int64(len(req.Input)); n > s.cfg.MaxScriptBytes {
			return tooLarge("Input too large: %d bytes of JSON exceeds the input limit of %d bytes", n, s.cfg.MaxScriptBytes)
		}
		if jsonDepth(req.Input) > maxInputDepth {
			return bad("Field \"input\" is nested more than %d deep: Python's JSON parser in the job reads about 1,000 levels at most", maxInputDepth)
		}
		job.V1.Input, job.V1.HasInput = req.Input, true
	}
	if len(req.Files) > s.cfg.MaxFiles {
		return tooLarge("Too many files: %d exceeds the limit of %d", len(req.Files), s.cfg.MaxFiles)
	}
	var total int64
	seen := map[string]bool{}
	for i, f := range req.Files {
		if f.Path == nil || f.Content == nil {
			return bad(`files[%d] must have "path" and "content" (base64)`, i)
		}
		if why := worker.BadPath(*f.Path); why != "" {
			return bad("files[%d]: path %q %s", i, *f.Path, why)
		}
		if seen[*f.Path] {
			return bad("files[%d]: path %q appears twice", i, *f.Path)
		}
		seen[*f.Path] = true
		data, err := base64.StdEncoding.DecodeString(*f.Content)
		if err != nil {
			return bad("files[%d]: content of %q is not valid base64 (standard alphabet, padded)", i, *f.Path)
		}
		if total += int64(len(data)); total > s.cfg.MaxFilesBytes {
			return tooLarge("Files too large: more than the limit of %d bytes together", s.cfg.MaxFilesBytes)
		}
		job.V1.Files = append(job.V1.Files, worker.File{Path: *f.Path, Size: int64(len(data)), Content: *f.Content})
	}
	// A file and a directory of the same name cannot both be written.
	for p := range seen {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if seen[d] {
				return bad("files: %q is both a file and the directory of %q", d, p)
			}
		}
	}
	if l := req.Limits; l != nil {
		if m := l.MemoryMB; m != nil {
			if *m <= 0 || *m > s.cfg.MaxMemoryMB {
				return bad("Field \"limits.memory_mb\" must be more than 0 and at most the server's %d", s.cfg.MaxMemoryMB)
			}
			job.V1.MemoryBytes = *m << 20
		}
		if b := l.StdoutBytes; b != nil {
			if *b <= 0 || *b > s.cfg.MaxStdoutBytes {
				return bad("Field \"limits.stdout_bytes\" must be more than 0 and at most the server's %d", s.cfg.MaxStdoutBytes)
			}
			job.V1.OutputBytes = *b
		}
	}
	return job, nil
}

// wallMS formats a job's wall-clock time in milliseconds, to 0.01 ms, for
// the X-Execution-Wall-Ms header both execute endpoints set.
func wallMS(d time.Duration) string {
	return strconv.FormatFloat(math.Round(float64(d.Microseconds())/10)/100, 'f', -1, 64)
}
