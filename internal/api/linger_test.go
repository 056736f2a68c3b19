package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/python-executor/python-executor/internal/worker"
)

// sendAllThenRead plays a client that writes its whole request before it
// reads anything (Python's urllib does): it fails, rather than reading the
// answer, when the server closes the connection on an unread body.
func sendAllThenRead(t *testing.T, addr, head string, body []byte) (*http.Response, map[string]any) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute)) // a broken server fails the test, not hangs it
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(body); err != nil {
		t.Fatalf("writing the body: %v (the server closed the connection before reading it)", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	var got map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	return resp, got
}

func chunked(b []byte) []byte {
	var out []byte
	for len(b) > 0 {
		n := min(len(b), 64<<10)
		out = append(out, fmt.Sprintf("%x\r\n", n)...)
		out = append(out, b[:n]...)
		out = append(out, "\r\n"...)
		b = b[n:]
	}
	return append(out, "0\r\n\r\n"...)
}

func TestEarlyAnswersReachClientsThatSendEverythingFirst(t *testing.T) {
	h := Handler(Config{MaxScriptBytes: 1 << 20, DefaultTimeout: time.Second, MaxTimeout: time.Second, APIKeys: []string{"k"}},
		fakeRunner{out: worker.Outcome{Kind: worker.KindOK, Result: json.RawMessage(`1`)}}, zerolog.Nop())
	srv := httptest.NewServer(h)
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	big := []byte(`{"script": "` + strings.Repeat("x", 20<<20) + `"}`)
	tests := []struct {
		name, head string
		body       []byte
		status     int
		errPrefix  string
	}{
		{"Content-Length over the limit", fmt.Sprintf("POST /execute HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nContent-Length: %d\r\n\r\n", len(big)),
			big, 413, "Request too large"},
		{"chunked body over the limit", "POST /execute HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nTransfer-Encoding: chunked\r\n\r\n",
			chunked(big), 413, "Request too large"},
		{"no API key", fmt.Sprintf("POST /execute HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(big)),
			big, 401, "Unauthorized"},
		{"unknown path", fmt.Sprintf("POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(big)),
			big, 404, "Not found"},
		{"wrong method", fmt.Sprintf("PUT /execute HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(big)),
			big, 405, "Method not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := sendAllThenRead(t, addr, tt.head, tt.body)
			msg, _ := body["error"].(string)
			if resp.StatusCode != tt.status || !strings.HasPrefix(msg, tt.errPrefix) || !resp.Close {
				t.Errorf("got %d %v (close %v), want %d with error starting %q and the connection closed",
					resp.StatusCode, body, resp.Close, tt.status, tt.errPrefix)
			}
		})
	}
}

func TestExpectContinueGetsTheAnswerWithoutSendingTheBody(t *testing.T) {
	srv := httptest.NewServer(testHandler(fakeRunner{}))
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/execute", strings.NewReader(strings.Repeat("x", 20<<20)))
	req.Header.Set("Expect", "100-continue")
	c := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute}}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != 413 || !strings.HasPrefix(body["error"].(string), "Request too large") {
		t.Errorf("got %d %v, want 413", resp.StatusCode, body)
	}
}

func TestBodyThatIsNotJSON(t *testing.T) {
	tests := []struct{ body, want string }{
		{"def main():\n    return 1", `Invalid JSON in request body: it is not JSON at all; send a JSON object, {"script": "..."}`},
		{`["def main(): return 1"]`, `Request body must be a JSON object: {"script": "..."}`},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		testHandler(fakeRunner{}).ServeHTTP(rec, httptest.NewRequest("POST", "/execute", strings.NewReader(tt.body)))
		var got map[string]any
		json.Unmarshal(rec.Body.Bytes(), &got)
		if diff := cmp.Diff(map[string]any{"error": tt.want, "stdout": ""}, got); rec.Code != 400 || diff != "" {
			t.Errorf("%q: status %d, body (-want +got):\n%s", tt.body, rec.Code, diff)
		}
	}
}

// startAnswer sends a request (head: its request line and headers, without
// Content-Length or the blank line) on a connection of its own, and returns
// once the answer has begun, its headers read and its body not.
func startAnswer(t *testing.T, srv *httptest.Server, head, body string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "%sContent-Length: %d\r\n\r\n%s", head, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestClientThatNeverReadsLetsGoOfTheAnswer: a finished answer waits in
// memory until the client reads it; a client that stops reading loses it
// after the reading time instead of holding it for the server's whole
// WriteTimeout (an outside attack held a GiB with 60 such clients).
func TestClientThatNeverReadsLetsGoOfTheAnswer(t *testing.T) {
	defer func(g time.Duration, r int) { readGrace, readRate = g, r }(readGrace, readRate)
	readGrace, readRate = 200*time.Millisecond, 1<<30               // reading time: 200 ms
	big := json.RawMessage(`"` + strings.Repeat("x", 32<<20) + `"`) // more than the sockets' buffers hold
	srv := httptest.NewServer(testHandler(fakeRunner{out: worker.Outcome{Kind: worker.KindOK, Result: big}}))
	defer srv.Close()
	resp := startAnswer(t, srv, "POST /execute HTTP/1.1\r\nHost: x\r\n", `{"script": "def main(): pass"}`)
	// The client stops reading, for well past the reading time.
	time.Sleep(2 * time.Second)
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil || n >= resp.ContentLength {
		t.Errorf("read %d of %d bytes (%v): the server kept the answer for a client that did not read", n, resp.ContentLength, err)
	}
}
