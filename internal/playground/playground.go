package playground

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// csp is the page's Content-Security-Policy: its own origin only, plus
// data: images (matplotlib figures arrive as base64) and the <style>
// elements the editor adds, which carry the response's nonce (%s).
const csp = "default-src 'self'; img-src 'self' data:; style-src 'self' 'nonce-%s'; object-src 'none'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// noncePlaceholder in index.html becomes each response's nonce: the page
// gives it to the editor (EditorView.cspNonce).
const noncePlaceholder = "__CSP_NONCE__"

type file struct {
	data []byte
	etag string
}

// Handler serves the page at "/" and its files at "/playground/<name>";
// any other path goes to notFound.
func Handler(notFound http.Handler) http.Handler {
	files := map[string]file{}
	entries, err := fs.ReadDir(static, "static")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	for _, e := range entries {
		b, err := static.ReadFile(path.Join("static", e.Name()))
		if err != nil {
			panic(err)
		}
		sum := sha256.Sum256(b)
		files[e.Name()] = file{b, `"` + hex.EncodeToString(sum[:12]) + `"`}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, "/playground/")
		ok = ok && name != "index.html" // the page has one address, /
		if r.URL.Path == "/" {
			name, ok = "index.html", true
		}
		f, found := files[name]
		if !ok || !found {
			notFound.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// A page of another site that opened the playground keeps no handle
		// on it (outside attack round 13 changed an open playground's
		// fragment, and so its script, through window.open's handle).
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if name == "index.html" {
			var b [16]byte
			rand.Read(b[:])
			nonce := base64.StdEncoding.EncodeToString(b[:])
			h.Set("Content-Security-Policy", fmt.Sprintf(csp, nonce))
			h.Set("Cache-Control", "no-store") // a new nonce each time
			page := bytes.ReplaceAll(f.data, []byte(noncePlaceholder), []byte(nonce))
			http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(page))
			return
		}
		h.Set("Cache-Control", "no-cache") // revalidate: the ETag changes with the binary
		h.Set("ETag", f.etag)
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.data))
	})
}
