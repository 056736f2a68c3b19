package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sync/semaphore"
)

// countingReader counts the Read calls on a request body.
type countingReader struct {
	r     io.Reader
	reads atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.r.Read(p)
}

// TestBodiesWaitForTheDecodeBudget: a body is decoded only once the
// budget has room for its size, and gives the room back; a body over
// smallBody (or of unknown size) waits for its room before it is read at
// all. With the budget taken, a client that gives up while waiting gets an
// error, not a decode.
func TestBodiesWaitForTheDecodeBudget(t *testing.T) {
	const budget, limit = 8 << 20, 4 << 20
	s := &server{bodies: semaphore.NewWeighted(budget)}
	small := []byte(`{"script": "x"}`)
	large := bytes.Repeat([]byte("x"), 2<<20)
	read := func(ctx context.Context, body []byte, size int64) (*countingReader, []byte, func(), error) {
		c := &countingReader{r: bytes.NewReader(body)}
		r := httptest.NewRequestWithContext(ctx, "POST", "/execute", c)
		r.ContentLength = size
		got, release, err := s.readBody(r, limit)
		return c, got, release, err
	}
	free := func() bool {
		if !s.bodies.TryAcquire(budget) {
			return false
		}
		s.bodies.Release(budget)
		return true
	}

	// The budget taken: every body waits; the large one and the one of
	// unknown size before they are read.
	if !s.bodies.TryAcquire(budget) {
		t.Fatal("fresh budget is taken")
	}
	for _, c := range []struct {
		name       string
		body       []byte
		size       int64
		readsFirst bool
	}{{"small", small, int64(len(small)), true}, {"large", large, int64(len(large)), false}, {"unknown size", small, -1, false}} {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r, _, release, err := read(ctx, c.body, c.size)
		release()
		if err == nil {
			t.Errorf("%s: decoded while the budget was taken", c.name)
		}
		if got := r.reads.Load() > 0; got != c.readsFirst {
			t.Errorf("%s: read before its turn: %v, want %v", c.name, got, c.readsFirst)
		}
	}
	s.bodies.Release(budget)

	for _, c := range []struct {
		name string
		body []byte
		size int64
	}{{"small", small, int64(len(small))}, {"large", large, int64(len(large))}, {"unknown size", small, -1}} {
		_, got, release, err := read(context.Background(), c.body, c.size)
		if err != nil || !bytes.Equal(got, c.body) {
			t.Fatalf("%s: got %d bytes, %v", c.name, len(got), err)
		}
		if free() {
			t.Errorf("%s: a body being decoded holds no budget", c.name)
		}
		release()
		if !free() {
			t.Errorf("%s: release did not give the budget back", c.name)
		}
	}

	// Over the limit, by its bytes or by its Content-Length: one error.
	for _, size := range []int64{-1, limit + 10} {
		_, got, release, err := read(context.Background(), []byte(strings.Repeat("x", limit+10)), size)
		if !errors.Is(err, errBodyTooLarge) || got != nil {
			t.Fatalf("over the limit (Content-Length %d): got %d bytes, %v", size, len(got), err)
		}
		release()
		if !free() {
			t.Fatalf("a body over the limit (Content-Length %d) kept budget", size)
		}
	}
}
