package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultServer is the server a Client talks to when given none.
const DefaultServer = "http://localhost:8080"

// Client talks to one python-executor server. Its methods are safe for
// concurrent use; configure it before the first call.
type Client struct {
	// BaseURL is the server's root, such as "http://localhost:8080".
	BaseURL string
	// APIKey, when set, is sent as "Authorization: Bearer <APIKey>".
	APIKey string
	// HTTPClient makes the requests; nil means http.DefaultClient. Bound a
	// request's time with its context rather than the client's Timeout.
	HTTPClient *http.Client
	// MaxRetries is how many times a request answered 503 (queue full,
	// no worker free in time, shutting down) or 429 (this API key runs as
	// many jobs as it may) is sent again. The server answers those before
	// running anything, so a retry never runs a script twice. 0 means
	// DefaultMaxRetries; a negative value disables retries.
	MaxRetries int
	// MaxRetryWait caps the wait before a retry that the server's
	// Retry-After asks for; 0 means DefaultMaxRetryWait.
	MaxRetryWait time.Duration
}

// Retry defaults.
const (
	DefaultMaxRetries   = 3
	DefaultMaxRetryWait = 30 * time.Second
)

// New returns a Client for the server at baseURL, with an API key when
// apiKey is not empty.
func New(baseURL, apiKey string) *Client {
	return &Client{BaseURL: baseURL, APIKey: apiKey}
}

// Request is the body of POST /v1/execute.
type Request struct {
	Script string `json:"script"`
	// Timeout in seconds; 0 means the server's default.
	Timeout float64 `json:"timeout,omitempty"`
	// Input is passed to main(input) as JSON. Nil sends none, and main is
	// called without an argument; json.RawMessage("null") sends null.
	// InputValue builds one from a Go value.
	Input  json.RawMessage `json:"input,omitempty"`
	Files  []File          `json:"files,omitempty"`
	Limits *Limits         `json:"limits,omitempty"`
}

// InputValue returns v as a Request.Input.
func InputValue(v any) (json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding input: %w", err)
	}
	return b, nil
}

// File is a file in the job's working directory: one the request sends, or
// one the job created or changed. Content travels as base64.
type File struct {
	Path    string `json:"path"`
	Size    int64  `json:"size,omitempty"` // in responses
	Content []byte `json:"content"`
}

// Limits lower the server's limits for one job.
type Limits struct {
	MemoryMB    int64 `json:"memory_mb,omitempty"`
	StdoutBytes int64 `json:"stdout_bytes,omitempty"`
}

// Result is how a job ended: the body of a 200 response.
type Result struct {
	// Outcome is "ok" or how the job failed (exception, timeout, ...).
	Outcome string `json:"outcome"`
	// Result is main's return value as JSON when Outcome is "ok".
	Result          json.RawMessage `json:"result"`
	Error           *ScriptError    `json:"error"`
	Stdout          string          `json:"stdout"`
	StdoutTruncated bool            `json:"stdout_truncated"`
	Stderr          string          `json:"stderr"`
	StderrTruncated bool            `json:"stderr_truncated"`
	Usage           Usage           `json:"usage"`
	Files           []File          `json:"files"`
	FilesOmitted    int             `json:"files_omitted"`
	Images          []Image         `json:"images"`
	ImagesOmitted   int             `json:"images_omitted"`
}

// OK reports whether main returned and its value serialized.
func (r *Result) OK() bool { return r.Outcome == "ok" }

// ScriptError says how a script failed.
type ScriptError struct {
	// Type is the exception's class name, or the outcome when no Python
	// exception ended the job ("timeout", "memory_limit", ...).
	Type      string  `json:"type"`
	Message   string  `json:"message"`
	Line      *int    `json:"line"`
	Traceback *string `json:"traceback"`
}

func (e *ScriptError) Error() string {
	if e.Line != nil {
		return fmt.Sprintf("%s: %s (line %d)", e.Type, e.Message, *e.Line)
	}
	return e.Type + ": " + e.Message
}

// Usage is what the job used. CPUMillis and MemoryPeakMB are nil when the
// job did not live to report them (a timeout, a crash).
type Usage struct {
	WallMillis   float64  `json:"wall_ms"`
	CPUMillis    *int64   `json:"cpu_ms"`
	MemoryPeakMB *float64 `json:"memory_peak_mb"`
}

// Image is a matplotlib figure the job left open.
type Image struct {
	Format  string `json:"format"`
	Content []byte `json:"content"`
}

// APIError is a response other than 200: the request was refused or the
// server could not run the job. The script did not fail: see Result for
// that.
type APIError struct {
	StatusCode int
	Message    string        // the server's "error"
	RetryAfter time.Duration // from Retry-After, 0 when absent
}

func (e *APIError) Error() string {
	return fmt.Sprintf("python-executor: %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// Temporary reports whether the same request may succeed later (the server
// was busy or shutting down).
func (e *APIError) Temporary() bool {
	return e.StatusCode == http.StatusServiceUnavailable || e.StatusCode == http.StatusTooManyRequests
}

// Execute runs a job with POST /v1/execute. A script that failed is not an
// error: the Result says how it failed. Errors are *APIError for a refused
// request (after retries, for 503 and 429), the context's error, or a
// transport error.
func (c *Client) Execute(ctx context.Context, req Request) (*Result, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding request: %w", err)
	}
	var res Result
	if err := c.do(ctx, http.MethodPost, "/v1/execute", body, &res); err != nil {
		return nil, err
	}
	if res.Outcome == "" {
		return nil, errors.New("python-executor: response has no outcome")
	}
	return &res, nil
}

// Health checks GET /health: nil when the server is up.
func (c *Client) Health(ctx context.Context) error {
	var h struct{ Status string }
	if err := c.do(ctx, http.MethodGet, "/health", nil, &h); err != nil {
		return err
	}
	if h.Status != "healthy" {
		return fmt.Errorf("python-executor: health status %q", h.Status)
	}
	return nil
}

// Info returns GET /info: version, isolation level and limits.
func (c *Client) Info(ctx context.Context) (map[string]any, error) {
	var info map[string]any
	if err := c.do(ctx, http.MethodGet, "/info", nil, &info); err != nil {
		return nil, err
	}
	return info, nil
}

// do sends one request, retrying 503 and 429 as Retry-After says, and
// decodes a 200 body into out.
func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	retries := c.MaxRetries
	if retries == 0 {
		retries = DefaultMaxRetries
	}
	maxWait := c.MaxRetryWait
	if maxWait <= 0 {
		maxWait = DefaultMaxRetryWait
	}
	for attempt := 0; ; attempt++ {
		err := c.once(ctx, method, path, body, out)
		var apiErr *APIError
		if !errors.As(err, &apiErr) || !apiErr.Temporary() || attempt >= retries {
			return err
		}
		wait := apiErr.RetryAfter
		if wait <= 0 {
			wait = time.Second
		}
		timer := time.NewTimer(min(wait, maxWait))
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
	}
}

func (c *Client) once(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.APIKey)
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("reading response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		e := &APIError{StatusCode: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
		var b struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &b) == nil && b.Error != "" {
			e.Message = b.Error
		} else {
			e.Message = strings.TrimSpace(string(raw[:min(len(raw), 200)]))
		}
		return e
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decoding response: %w", err)
	}
	return nil
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
