package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/rs/zerolog"
	"github.com/rs/zerolog/hlog"
	"golang.org/x/sync/semaphore"

	"github.com/python-executor/python-executor/internal/metrics"
	"github.com/python-executor/python-executor/internal/playground"
	"github.com/python-executor/python-executor/internal/pool"
	"github.com/python-executor/python-executor/internal/worker"
)

// Runner runs a job; *pool.Pool is the production one.
type Runner interface {
	Run(ctx context.Context, job worker.Job) (worker.Outcome, error)
	Stat() pool.Stat
}

// Config holds the limits the API enforces before a job reaches a worker.
type Config struct {
	MaxScriptBytes int64
	DefaultTimeout time.Duration
	MaxTimeout     time.Duration
	// Info is served as-is by GET /info (isolation level, limits, version).
	Info map[string]any
	// APIKeys, when not empty, are the bearer tokens POST /execute accepts.
	APIKeys []string
	// PerKeyConcurrency, when > 0, bounds the jobs one API key runs at once.
	PerKeyConcurrency int
	// Metrics, when set, records every POST /execute and serves /metrics.
	Metrics *metrics.Metrics
	// POST /v1/execute: at most MaxFiles files of MaxFilesBytes together
	// in; per-request limits may only lower MaxMemoryMB and MaxStdoutBytes.
	MaxFiles       int
	MaxFilesBytes  int64
	MaxMemoryMB    int64
	MaxStdoutBytes int64
	// Playground serves the playground page at GET / (package playground).
	Playground bool
}

// Handler returns the service's HTTP handler.
func Handler(cfg Config, runner Runner, log zerolog.Logger) http.Handler {
	s := &server{cfg: cfg, runner: runner}
	s.bodies = semaphore.NewWeighted(bodiesInFlight * max(s.v1BodyLimit(), s.maxBody()))
	s.smallBodies = semaphore.NewWeighted(smallBodiesInFlight * smallBody)
	r := chi.NewRouter()
	r.Use(linger, hlog.NewHandler(log), requestID, accessLog(cfg.Metrics), middleware.Recoverer, sameOrigin)
	notFound := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "Not found: "+r.URL.Path, "")
	})
	r.NotFound(notFound)
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "Method not allowed: "+r.Method+" "+r.URL.Path, "")
	})
	r.Get("/health", s.health)
	r.Get("/ready", s.ready)
	r.Get("/info", s.info)
	keys := newAuth(cfg.APIKeys, cfg.PerKeyConcurrency)
	if cfg.Metrics != nil {
		r.With(keys.reader).Method(http.MethodGet, "/metrics", cfg.Metrics.Handler())
	}
	r.With(keys.middleware).Post("/execute", s.execute)
	r.With(keys.middleware).Post("/v1/execute", s.v1Execute)
	r.Get("/openapi.json", s.openapi)
	if cfg.Playground {
		page := playground.Handler(notFound)
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			r.Method(m, "/", page)
			r.Method(m, "/playground/*", page)
		}
	}
	return r
}

// sameOrigin refuses POSTs a browser sends from another site (Sec-Fetch-Site,
// or Origin against Host): without API keys, any web page a user visits
// could otherwise run scripts on a server the user's browser reaches
// (localhost, an intranet), with a text/plain body that needs no CORS
// preflight (outside attack round 13). The playground is same-origin;
// clients that are not browsers send neither header.
func sameOrigin(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setOutcome(r, "cross_origin")
		writeError(w, http.StatusForbidden, "Forbidden: cross-origin requests from browsers are refused", "")
	}))
	return cop.Handler(next)
}

type server struct {
	cfg    Config
	runner Runner
	// bodies is what request bodies over smallBody may take while they are
	// decoded, smallBodies what the others may: each holds its size until
	// its job is built.
	bodies, smallBodies *semaphore.Weighted
}

// bodiesInFlight is how many of the largest request bodies the server reads
// and decodes at once. Decoding takes a few times a body's size (the JSON
// decoder's copy, the strings, the files' bytes), before the queue can
// refuse its job: an outside attack of 20 concurrent 21 MB requests took
// the server from 20 MiB to 1.8 GiB. More wait their turn.
const bodiesInFlight = 4

// smallBody is the size up to which a body is read before it takes its
// share of a budget, and then a share of the small bodies' own budget
// (smallBodiesInFlight of them), never of the large ones': a slow client
// holds nothing until it has sent more than this, and large bodies, or
// clients that send one slowly (for at most the server's 30 s read
// timeout), never hold a small request up. (Four chunked requests of a
// byte every 2 s held every other client's job for 15 to 29 s when a body
// of unknown size took its share first: outside attack round 14.)
const smallBody = 1 << 20

// smallBodiesInFlight is how many bodies of smallBody the server decodes
// at once; smaller ones take less.
const smallBodiesInFlight = 32

// errBodyTooLarge is readBody's answer to a body over its limit, whether
// its Content-Length says so (nothing is read then) or its bytes do.
var errBodyTooLarge = errors.New("request body too large")

// readBody reads r's body, of at most limit bytes, once its budget has
// room for it. release gives the room back: call it once the body is
// decoded.
func (s *server) readBody(r *http.Request, limit int64) (body []byte, release func(), err error) {
	release = func() {}
	if r.ContentLength > limit {
		return nil, release, errBodyTooLarge
	}
	take := func(sem *semaphore.Weighted, n int64) error {
		n = max(n, 1)
		if err := sem.Acquire(r.Context(), n); err != nil {
			return err
		}
		release = func() { sem.Release(n) }
		return nil
	}
	if r.ContentLength > smallBody {
		// A large body that says so waits for its room before any of it
		// is read.
		if err := take(s.bodies, r.ContentLength); err != nil {
			return nil, release, err
		}
		body, err = io.ReadAll(io.LimitReader(r.Body, limit+1))
	} else {
		// Small, or of unknown size: its first smallBody bytes first.
		body, err = io.ReadAll(io.LimitReader(r.Body, min(limit, smallBody)+1))
		switch {
		case err != nil:
		case int64(len(body)) <= smallBody:
			err = take(s.smallBodies, int64(len(body)))
		case r.ContentLength < 0 && limit > smallBody:
			// Larger than a small body, of unknown size: the room for the
			// largest allowed, then the rest.
			if err = take(s.bodies, limit); err == nil {
				var rest []byte
				rest, err = io.ReadAll(io.LimitReader(r.Body, limit+1-int64(len(body))))
				body = append(body, rest...)
			}
		}
	}
	switch {
	case err != nil:
		return nil, release, err
	case int64(len(body)) > limit:
		return nil, release, errBodyTooLarge
	}
	return body, release, nil
}

func (s *server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "healthy"})
}

func (s *server) ready(w http.ResponseWriter, r *http.Request) {
	st := s.runner.Stat()
	ok, why := st.Ready()
	body := map[string]any{"status": "ready", "idle_workers": st.Idle, "busy_workers": st.Busy,
		"waiting": st.Waiting, "pool_size": st.Size}
	if !ok {
		body["status"], body["reason"] = "not ready", why
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *server) info(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.cfg.Info)
}

// request is POST /execute's body.
type request struct {
	Script  *string  `json:"script"`
	Timeout *float64 `json:"timeout"`
}

// badRequest is a client error with the status and message to send.
type badRequest struct {
	status int
	msg    string
}

func (e *badRequest) Error() string { return e.msg }

// maxBody is the largest request body: room for JSON escaping of the
// largest script plus the other fields.
func (s *server) maxBody() int64 { return 6*s.cfg.MaxScriptBytes + 4096 }

func (s *server) tooLarge() *badRequest {
	return &badRequest{http.StatusRequestEntityTooLarge,
		fmt.Sprintf("Request too large: the script limit is %d bytes", s.cfg.MaxScriptBytes)}
}

func (s *server) decode(r *http.Request) (worker.Job, error) {
	body, release, err := s.readBody(r, s.maxBody())
	defer release()
	switch {
	case errors.Is(err, errBodyTooLarge):
		return worker.Job{}, s.tooLarge()
	case err != nil:
		return worker.Job{}, &badRequest{http.StatusBadRequest, "Could not read the request body"}
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return worker.Job{}, &badRequest{http.StatusBadRequest, `Empty request body: send {"script": "..."}`}
	}
	if body[0] != '{' {
		if !json.Valid(body) {
			return worker.Job{}, &badRequest{http.StatusBadRequest,
				`Invalid JSON in request body: it is not JSON at all; send a JSON object, {"script": "..."}`}
		}
		return worker.Job{}, &badRequest{http.StatusBadRequest, `Request body must be a JSON object: {"script": "..."}`}
	}
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return worker.Job{}, &badRequest{http.StatusBadRequest,
				fmt.Sprintf("Field %q must be a %s", typeErr.Field, map[string]string{"script": "string", "timeout": "number of seconds"}[typeErr.Field])}
		}
		return worker.Job{}, &badRequest{http.StatusBadRequest, "Invalid JSON in request body: " + err.Error()}
	}
	if req.Script == nil {
		return worker.Job{}, &badRequest{http.StatusBadRequest, `Missing required field "script"`}
	}
	if n := int64(len(*req.Script)); n > s.cfg.MaxScriptBytes {
		return worker.Job{}, &badRequest{http.StatusRequestEntityTooLarge,
			fmt.Sprintf("Script too large: %d bytes exceeds the script limit of %d bytes", n, s.cfg.MaxScriptBytes)}
	}
	job := worker.Job{Script: *req.Script, Timeout: s.cfg.DefaultTimeout}
	if req.Timeout != nil {
		t := *req.Timeout
		if math.IsNaN(t) || t <= 0 || t > s.cfg.MaxTimeout.Seconds() {
			return worker.Job{}, &badRequest{http.StatusBadRequest,
				fmt.Sprintf("Field \"timeout\" must be more than 0 and at most %g seconds", s.cfg.MaxTimeout.Seconds())}
		}
		job.Timeout = time.Duration(t * float64(time.Second))
	}
	return job, nil
}

// response is POST /execute's body. Result is present on success, Error on
// failure; the seed's clients read exactly these two plus stdout.
type response struct {
	Result          *json.RawMessage `json:"result,omitempty"`
	Error           string           `json:"error,omitempty"`
	Stdout          string           `json:"stdout"`
	StdoutTruncated bool             `json:"stdout_truncated,omitempty"`
}

func (s *server) execute(w http.ResponseWriter, r *http.Request) {
	job, err := s.decode(r)
	if err != nil {
		var bad *badRequest
		errors.As(err, &bad)
		setOutcome(r, "bad_request")
		writeError(w, bad.status, bad.msg, "")
		return
	}
	log := hlog.FromRequest(r)
	log.Debug().Str("script", job.Script).Dur("timeout", job.Timeout).Msg("job")
	out, ok := s.run(w, r, job)
	if !ok {
		return
	}
	resp := response{Stdout: strings.TrimRight(out.Stdout, "\n"), StdoutTruncated: out.StdoutTruncated}
	if out.Kind == worker.KindOK {
		resp.Result = &out.Result
	} else {
		resp.Error = out.Error
	}
	if out.StdoutTruncated {
		w.Header().Set("X-Stdout-Bytes", strconv.FormatInt(out.StdoutBytes, 10))
	}
	writeJSON(w, http.StatusOK, resp)
}

// run runs job for the request r. When the job did not complete it answers
// with the one status mapping and returns false; otherwise it sets the
// outcome headers both execute endpoints send and returns the outcome.
func (s *server) run(w http.ResponseWriter, r *http.Request, job worker.Job) (worker.Outcome, bool) {
	out, err := s.runner.Run(r.Context(), job)
	if err != nil {
		s.failed(w, r, err)
		return out, false
	}
	setOutcome(r, string(out.Kind))
	w.Header().Set("X-Execution-Outcome", string(out.Kind))
	w.Header().Set("X-Execution-Wall-Ms", wallMS(out.Elapsed))
	return out, true
}

// failed answers a job that did not complete, with the one status mapping.
func (s *server) failed(w http.ResponseWriter, r *http.Request, err error) {
	code, outcome, msg := status(err)
	setOutcome(r, outcome)
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	hlog.FromRequest(r).Warn().Err(err).Int("status", code).Msg("job not completed")
	writeError(w, code, msg, "")
}

// status maps a job that did not complete to a status code, an outcome for
// logs and metrics, and a message safe to show to clients.
func status(err error) (code int, outcome, msg string) {
	switch {
	case errors.Is(err, pool.ErrClosed): // first: also wraps jobs killed by shutdown
		return http.StatusServiceUnavailable, "shutting_down", "Server shutting down; retry on another instance"
	case errors.Is(err, pool.ErrQueueFull):
		return http.StatusServiceUnavailable, "busy", "Server busy: the job queue is full; retry later"
	case errors.Is(err, pool.ErrQueueTimeout):
		return http.StatusServiceUnavailable, "busy", "Server busy: no worker became free in time; retry later"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return 499, "cancelled", "Request cancelled by the client; the job was killed"
	case errors.Is(err, worker.ErrUnresponsive):
		return http.StatusInternalServerError, "failed", "Internal error: the worker stopped responding; the job was killed"
	}
	return http.StatusInternalServerError, "failed", "Internal error: the worker failed while running the job"
}

func writeError(w http.ResponseWriter, code int, msg, stdout string) {
	writeJSON(w, code, response{Error: msg, Stdout: stdout})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	body, err := encodeJSON(v)
	if err != nil {
		code = http.StatusInternalServerError
		body = []byte(`{"error":"Internal error: could not encode the response","stdout":""}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	// A finished answer waits in memory until the client has read it: a
	// client that never reads must not hold it for the server's whole
	// WriteTimeout (many of them held a GiB in an outside attack).
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(readingTime(len(body))))
	w.WriteHeader(code)
	w.Write(body)
}

// readGrace and readRate set how long a client may take to read an answer
// of n bytes: readGrace, plus a second per readRate bytes.
var (
	readGrace = 10 * time.Second
	readRate  = 256 << 10
)

func readingTime(n int) time.Duration {
	return readGrace + time.Duration(n/readRate)*time.Second
}

// encodeJSON is how every response body is encoded: one line, HTML
// characters left alone, a final newline.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(v)
	return buf.Bytes(), err
}

type outcomeKey struct{}

func setOutcome(r *http.Request, o string) {
	if p, ok := r.Context().Value(outcomeKey{}).(*string); ok {
		*p = o
	}
}

// requestID accepts a sane X-Request-ID or makes one, echoes it and puts it
// on the request's logger.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if !validID(id) {
			var b [8]byte
			rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-ID", id)
		log := zerolog.Ctx(r.Context()).With().Str("request_id", id).Logger()
		next.ServeHTTP(w, r.WithContext(log.WithContext(r.Context())))
	})
}

func validID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// accessLog writes one line per request and, for jobs, records metrics.
func accessLog(m *metrics.Metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			outcome := ""
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			r = r.WithContext(context.WithValue(r.Context(), outcomeKey{}, &outcome))
			next.ServeHTTP(ww, r)
			took := time.Since(start)
			ev := hlog.FromRequest(r).Info().
				Str("method", r.Method).Str("path", r.URL.Path).Int("status", ww.Status()).
				Int("bytes", ww.BytesWritten()).Float64("duration_ms", float64(took.Microseconds())/1000)
			if outcome != "" {
				ev = ev.Str("outcome", outcome)
				if m != nil {
					m.Request(outcome, ww.Status(), took)
				}
			}
			ev.Msg("request")
		})
	}
}
