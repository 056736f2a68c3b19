package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
)

// auth checks bearer API keys. With no keys configured it lets everything
// through.
type auth struct {
	keys   []string
	hashes [][sha256.Size]byte      // of keys, compared instead of the keys
	slots  map[string]chan struct{} // per-key concurrency, when limited
	limit  int
}

func newAuth(keys []string, perKey int) *auth {
	a := &auth{limit: perKey}
	if perKey > 0 {
		a.slots = map[string]chan struct{}{}
	}
	for _, k := range keys {
		if k = strings.TrimSpace(k); k != "" {
			a.keys = append(a.keys, k)
			a.hashes = append(a.hashes, sha256.Sum256([]byte(k)))
			if perKey > 0 {
				a.slots[k] = make(chan struct{}, perKey)
			}
		}
	}
	return a
}

// match returns the configured key equal to token, comparing against every
// key in constant time so that timing reveals neither which, nor how much
// of one, nor its length: the digests compared are all of one size.
func (a *auth) match(token string) string {
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i := range a.hashes {
		if subtle.ConstantTimeCompare(a.hashes[i][:], sum[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return ""
	}
	return a.keys[found]
}

// key returns the configured key r presents, or answers 401 and returns "".
func (a *auth) key(w http.ResponseWriter, r *http.Request) string {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	key := ""
	if ok {
		key = a.match(strings.TrimSpace(token))
	}
	if key == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="python-executor"`)
		writeError(w, http.StatusUnauthorized, "Unauthorized: send Authorization: Bearer <API key>", "")
	}
	return key
}

// reader lets through requests that present a key, without counting them
// against its concurrency: GET /metrics, whose request counts, latencies and
// sizes tell one tenant about another's jobs (outside attack round 13).
func (a *auth) reader(next http.Handler) http.Handler {
	if len(a.keys) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.key(w, r) != "" {
			next.ServeHTTP(w, r)
		}
	})
}

func (a *auth) middleware(next http.Handler) http.Handler {
	if len(a.keys) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := a.key(w, r)
		if key == "" {
			setOutcome(r, "unauthorized") // a job refused: counted in the request metrics
			return
		}
		if a.slots != nil {
			select {
			case a.slots[key] <- struct{}{}:
				defer func() { <-a.slots[key] }()
			default:
				setOutcome(r, "key_busy")
				w.Header().Set("Retry-After", "1")
				writeError(w, http.StatusTooManyRequests,
					fmt.Sprintf("Too many concurrent requests for this API key (limit %d)", a.limit), "")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
