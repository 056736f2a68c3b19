package api

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// An answer sent before the request body was read (413 on Content-Length,
// 401, 404, 405, 429) is followed by a lingering close, as nginx does it:
// the server reads and discards what the client is still sending, at most
// lingerBytes for at most lingerTime, before closing the connection. Without
// it, a client that writes its whole body before reading the response
// (Python's urllib, most HTTP libraries) gets a connection reset instead of
// the answer: closing a socket with unread data in it makes the kernel send
// RST, and the client's kernel then drops the answer it had received.
const (
	lingerBytes = 64 << 20
	lingerTime  = 5 * time.Second
)

// linger wraps a handler so that any answer sent before the request body was
// read to its end closes the connection (Connection: close) after a
// lingering close. It must wrap the server's own ResponseWriter.
func linger(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		// Left alone, net/http would drain up to 256 KiB of the body when
		// the answer starts, then give up and close.
		if err := rc.EnableFullDuplex(); err != nil {
			next.ServeHTTP(w, r)
			return
		}
		body := &trackedBody{ReadCloser: r.Body}
		r.Body = body
		next.ServeHTTP(&lingerWriter{ResponseWriter: w, body: body}, r)
		if body.finished() {
			return
		}
		if body.untouched() && strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
			// The client waits for "100 Continue" before sending the body
			// and has the final answer instead: nothing is on its way.
			return
		}
		rc.Flush()
		rc.SetReadDeadline(time.Now().Add(lingerTime))
		io.CopyN(io.Discard, body.ReadCloser, lingerBytes)
	})
}

// trackedBody records whether the handler read the body to its end.
type trackedBody struct {
	io.ReadCloser
	mu   sync.Mutex
	read int64 // guarded by mu
	eof  bool  // guarded by mu
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.mu.Lock()
	b.read += int64(n)
	b.eof = b.eof || err == io.EOF
	b.mu.Unlock()
	return n, err
}

func (b *trackedBody) finished() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.eof
}

func (b *trackedBody) untouched() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.read == 0 && !b.eof
}

// lingerWriter adds Connection: close to an answer that starts before the
// body was read to its end: the rest of the body is discarded, not parsed as
// the next request.
type lingerWriter struct {
	http.ResponseWriter
	body  *trackedBody
	wrote bool
}

func (w *lingerWriter) WriteHeader(code int) {
	if !w.wrote && code >= 200 { // a 1xx is not the answer
		w.wrote = true
		if !w.body.finished() {
			w.Header().Set("Connection", "close")
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *lingerWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *lingerWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes flushes through, for handlers that test for http.Flusher.
func (w *lingerWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
