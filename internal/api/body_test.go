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

// TestBodiesWaitForTheDecodeBudget: a body is decoded only once its budget
// has room for its size, and gives the room back. A body that says it is
// larger than smallBody waits for its room before any of it is read; every
// other body is read up to smallBody first, so that a slow client holds
// nothing until it has sent that much. Small bodies have a budget of their
// own, which large ones never take. A client that gives up while waiting
// gets an error, not a decode.
func TestBodiesWaitForTheDecodeBudget(t *testing.T) {
	const budget, smallBudget, limit = 8 << 20, 2 << 20, 4 << 20
	s := &server{bodies: semaphore.NewWeighted(budget), smallBodies: semaphore.NewWeighted(smallBudget)}
	small := []byte(`{"script": "x"}`)
	large := bytes.Repeat([]byte("x"), 2<<20)
	read := func(ctx context.Context, body []byte, size int64) (*countingReader, []byte, func(), error) {
		c := &countingReader{r: bytes.NewReader(body)}
		r := httptest.NewRequestWithContext(ctx, "POST", "/execute", c)
		r.ContentLength = size
		got, release, err := s.readBody(r, limit)
		return c, got, release, err
	}
	free := func(sem *semaphore.Weighted, n int64) bool {
		if !sem.TryAcquire(n) {
			return false
		}
		sem.Release(n)
		return true
	}
	kinds := []struct {
		name string
		body []byte
		size int64
		sem  *semaphore.Weighted
		n    int64
	}{
		{"small", small, int64(len(small)), s.smallBodies, smallBudget},
		{"large", large, int64(len(large)), s.bodies, budget},
		{"small of unknown size", small, -1, s.smallBodies, smallBudget},
		{"large of unknown size", large, -1, s.bodies, budget},
	}

	// Both budgets taken: every body waits, the large one that says its
	// size before it is read, the others once they sent their first bytes.
	s.bodies.TryAcquire(budget)
	s.smallBodies.TryAcquire(smallBudget)
	for _, c := range kinds {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r, _, release, err := read(ctx, c.body, c.size)
		release()
		if err == nil {
			t.Errorf("%s: decoded while the budget was taken", c.name)
		}
		if got, want := r.reads.Load() > 0, c.name != "large"; got != want {
			t.Errorf("%s: read before its turn: %v, want %v", c.name, got, want)
		}
	}
	s.smallBodies.Release(smallBudget)

	// Large bodies never hold a small one up.
	for _, c := range kinds {
		if c.sem != s.smallBodies {
			continue
		}
		_, got, release, err := read(context.Background(), c.body, c.size)
		if err != nil || !bytes.Equal(got, c.body) {
			t.Errorf("%s, the large bodies' budget taken: got %d bytes, %v", c.name, len(got), err)
		}
		release()
	}
	s.bodies.Release(budget)

	// Each body holds its own budget until it is released.
	for _, c := range kinds {
		_, got, release, err := read(context.Background(), c.body, c.size)
		if err != nil || !bytes.Equal(got, c.body) {
			t.Fatalf("%s: got %d bytes, %v", c.name, len(got), err)
		}
		if free(c.sem, c.n) {
			t.Errorf("%s: a body being decoded holds none of its budget", c.name)
		}
		release()
		if !free(c.sem, c.n) {
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
		if !free(s.bodies, budget) || !free(s.smallBodies, smallBudget) {
			t.Fatalf("a body over the limit (Content-Length %d) kept budget", size)
		}
	}
}
