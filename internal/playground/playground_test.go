package playground

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestPage(t *testing.T) {
	h := Handler(http.NotFoundHandler())
	rec := get(t, h, "/")
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	// The nonce in the policy is the one the page hands the editor, and a
	// new one each time.
	m := regexp.MustCompile(`'nonce-([^']+)'`).FindStringSubmatch(rec.Header().Get("Content-Security-Policy"))
	if m == nil || !strings.Contains(rec.Body.String(), `<meta name="csp-nonce" content="`+m[1]+`">`) {
		t.Errorf("nonce: policy %q, page without it", rec.Header().Get("Content-Security-Policy"))
	}
	if again := get(t, h, "/"); again.Header().Get("Content-Security-Policy") == rec.Header().Get("Content-Security-Policy") {
		t.Error("two responses share a nonce")
	}
	if !strings.Contains(rec.Header().Get("Content-Security-Policy"), "default-src 'self'") {
		t.Errorf("policy %q", rec.Header().Get("Content-Security-Policy"))
	}
	// Another site that opened the page keeps no handle on it.
	if got := rec.Header().Get("Cross-Origin-Opener-Policy"); got != "same-origin" {
		t.Errorf("Cross-Origin-Opener-Policy %q, want same-origin", got)
	}
	for _, bad := range []string{"http://", "https://", "//cdn"} {
		if strings.Contains(rec.Body.String(), bad) {
			t.Errorf("the page refers to %q", bad)
		}
	}
}

func TestFiles(t *testing.T) {
	h := Handler(http.NotFoundHandler())
	for path, ctype := range map[string]string{
		"/playground/app.js": "text/javascript", "/playground/editor.js": "text/javascript",
		"/playground/examples.json": "application/json", "/playground/style.css": "text/css",
	} {
		rec := get(t, h, path)
		if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), ctype) || rec.Header().Get("ETag") == "" {
			t.Errorf("GET %s: %d %s", path, rec.Code, rec.Header().Get("Content-Type"))
			continue
		}
		if again := get(t, h, path, "If-None-Match", rec.Header().Get("ETag")); again.Code != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %d", path, again.Code)
		}
	}
	for _, path := range []string{"/playground/", "/playground/index.html", "/playground/nope.js", "/index.html", "/playground/../app.js"} {
		if rec := get(t, h, path); rec.Code != 404 {
			t.Errorf("GET %s: %d, want 404", path, rec.Code)
		}
	}
}
