package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog/hlog"

	"github.com/python-executor/python-executor/internal/worker"
)

// POST /v1/execute with Accept: text/event-stream answers as server-sent
// events: "stdout" and "stderr" events whose data is a JSON string holding
// the next chunk of that stream, as the script writes it, then one "result"
// event whose data is the JSON body the same request would have had without
// the header (without its final newline). Everything that can go wrong
// before the script produces output (bad request, 401, 429, 503, a failed
// worker) is answered as without the header, with its status and a JSON
// body: the 200 and the stream start with the first chunk of output, or
// with the result. When the job fails after the stream started, an "error"
// event carries {"status": <the status it would have had>, "error": ...,
// "stdout": ""} instead of the result. A client that goes away cancels the
// job, as without the header.

// keepAlive is how often a stream that has started but has nothing to say
// sends a comment, so that intermediaries do not close it as idle.
const keepAlive = 15 * time.Second

// wantsStream reports whether the request's Accept header lists
// text/event-stream (with a quality above 0).
func wantsStream(r *http.Request) bool {
	for _, h := range r.Header.Values("Accept") {
		for _, part := range strings.Split(h, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || mt != "text/event-stream" {
				continue
			}
			if q, err := strconv.ParseFloat(params["q"], 64); err == nil && q <= 0 {
				continue
			}
			return true
		}
	}
	return false
}

// v1Stream runs job for a request that asked for server-sent events.
func (s *server) v1Stream(w http.ResponseWriter, r *http.Request, job worker.Job) {
	q := newOutputQueue()
	job.Output = q.add
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	type ran struct {
		out worker.Outcome
		err error
	}
	done := make(chan ran, 1)
	go func() {
		out, err := s.runner.Run(ctx, job)
		done <- ran{out, err}
	}()
	sw := &sseWriter{w: w, rc: http.NewResponseController(w)}
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-q.wake:
			err = sw.chunks(q.take(false))
		case <-tick.C:
			if sw.started {
				err = sw.send(": keep-alive\n\n")
			}
		case res := <-done:
			// Run has returned: every chunk is queued. A client gone by
			// now misses the end; the job's outcome stands.
			sw.chunks(q.take(true))
			s.streamEnd(sw, r, res.out, res.err)
			return
		}
		if err != nil {
			// The client is gone: cancel the job now rather than when the
			// server notices the closed connection.
			cancel(fmt.Errorf("%w: writing to the client: %v", context.Canceled, err))
		}
	}
}

// streamEnd sends how the job ended: as without the header while nothing
// has been sent, else as a result or an error event.
func (s *server) streamEnd(sw *sseWriter, r *http.Request, out worker.Outcome, err error) {
	if err == nil {
		setOutcome(r, string(out.Kind))
		if sw.err != nil {
			return // the client is gone: no result to encode for it
		}
		body, _ := encodeJSON(v1Body(out))
		sw.event("result", bytes.TrimSuffix(body, []byte("\n")))
		return
	}
	if !sw.started {
		s.failed(sw.w, r, err)
		return
	}
	code, outcome, msg := status(err)
	setOutcome(r, outcome)
	hlog.FromRequest(r).Warn().Err(err).Int("status", code).Msg("job not completed after its stream started")
	body, _ := json.Marshal(map[string]any{"status": code, "error": msg, "stdout": ""})
	sw.event("error", body)
}

// sseWriter writes server-sent events, starting the 200 response with the
// first one and flushing after each. The client has the reading time of
// each write (readingTime) to take it, as it has for a JSON answer; once a
// write has failed, every later one fails at once.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
	err     error // the first failed write's
}

func (sw *sseWriter) send(s string) error {
	if sw.err != nil {
		return sw.err
	}
	sw.rc.SetWriteDeadline(time.Now().Add(readingTime(len(s))))
	if !sw.started {
		sw.started = true
		h := sw.w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no") // nginx and friends: do not buffer
		sw.w.WriteHeader(http.StatusOK)
	}
	_, err := sw.w.Write([]byte(s))
	if err == nil {
		err = sw.rc.Flush()
	}
	sw.err = err
	return err
}

// event sends one event; data must not hold a newline.
func (sw *sseWriter) event(name string, data []byte) error {
	return sw.send("event: " + name + "\ndata: " + string(data) + "\n\n")
}

func (sw *sseWriter) chunks(cs []chunk) error {
	if sw.err != nil {
		return sw.err
	}
	var b strings.Builder
	for _, c := range cs {
		data, _ := json.Marshal(strings.ToValidUTF8(string(c.data), "\uFFFD"))
		b.WriteString("event: " + c.stream + "\ndata: ")
		b.Write(data)
		b.WriteString("\n\n")
	}
	if b.Len() == 0 {
		return nil
	}
	return sw.send(b.String())
}

// chunk is output of one stream waiting to be sent.
type chunk struct {
	stream string
	data   []byte
}

// outputQueue collects a job's output chunks from the goroutines that read
// its pipes, without ever blocking them, for the handler to send. It holds
// back the bytes of a UTF-8 character split between two reads, so that each
// event is whole text. What it holds is bounded by the job's output limits:
// only kept bytes reach it.
type outputQueue struct {
	mu      sync.Mutex
	pending []chunk           // guarded by mu; consecutive chunks of a stream merged
	partial map[string][]byte // guarded by mu; an incomplete character per stream
	wake    chan struct{}     // one token: pending may have grown
}

func newOutputQueue() *outputQueue {
	return &outputQueue{partial: map[string][]byte{}, wake: make(chan struct{}, 1)}
}

// add is a worker.Job's Output.
func (q *outputQueue) add(stream string, b []byte) {
	q.mu.Lock()
	data := b
	if p := q.partial[stream]; len(p) > 0 {
		data = append(p, b...)
	}
	cut := incompleteTail(data)
	q.partial[stream] = append([]byte(nil), data[cut:]...) // nil unless a character is split
	data = data[:cut]
	if len(data) > 0 {
		if n := len(q.pending); n > 0 && q.pending[n-1].stream == stream {
			q.pending[n-1].data = append(q.pending[n-1].data, data...)
		} else {
			q.pending = append(q.pending, chunk{stream, append([]byte(nil), data...)})
		}
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take returns and forgets what is pending; last also returns the held
// back bytes (the job's output has ended).
func (q *outputQueue) take(last bool) []chunk {
	q.mu.Lock()
	defer q.mu.Unlock()
	cs := q.pending
	q.pending = nil
	if last {
		for _, stream := range []string{"stdout", "stderr"} {
			if p := q.partial[stream]; len(p) > 0 {
				cs = append(cs, chunk{stream, p})
			}
		}
		clear(q.partial)
	}
	return cs
}

// incompleteTail returns where an incomplete UTF-8 character at the end of
// b starts, or len(b) when b ends with a whole one (or with bytes that can
// never become one).
func incompleteTail(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}
