package main

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/google/go-cmp/cmp"
)

// These tests drive the playground page (GET /) in headless Chromium.
// scripts/deps.sh installs Debian's chromium for test.sh; set
// PYEXEC_SCREENSHOTS to a directory to also get screenshots of the page in
// light and dark themes and at a phone's width.

// openPage starts headless Chromium for one test, with the page of the
// server at url open, and records every request the page makes.
func openPage(t *testing.T, url string, width, height int64) (context.Context, func() []string) {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Skip("no chromium on PATH: scripts/deps.sh installs it when run by scripts/test.sh (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path),
		chromedp.NoSandbox, // the tests run as root, where Chromium's sandbox refuses to start
		chromedp.WindowSize(int(width), int(height)), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelBrowser(); cancelAlloc() })

	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", path, err)
	}
	var mu sync.Mutex
	var urls []string
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			urls = append(urls, e.Request.URL)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	viewport := []chromedp.EmulateViewportOption{}
	if width < 600 {
		viewport = append(viewport, chromedp.EmulateMobile, chromedp.EmulateTouch)
	}
	err = chromedp.Do(ctx, chromedp.EmulateViewport(width, height, viewport...),
		chromedp.Navigate(url+"/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="script"]`)))
	if err == nil {
		err = poll(ctx, `document.body.dataset.ready === "true"`)
	}
	if err != nil {
		t.Fatalf("opening the playground: %v", err)
	}
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), urls...)
	}
}

// testID selects the element with data-testid id.
func testID(id string) chromedp.CSS { return chromedp.CSS(`[data-testid="` + id + `"]`) }

// poll waits until the JavaScript expression is true.
func poll(ctx context.Context, expr string) error {
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(60*time.Second)))
	return err
}

// eval evaluates a JavaScript expression.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// pageText returns the text of the element with data-testid id.
func pageText(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	return eval[string](t, ctx, `document.querySelector('[data-testid="`+id+`"]').textContent`)
}

// pickExample chooses an example from the menu, as a user would.
func pickExample(t *testing.T, ctx context.Context, value string) {
	t.Helper()
	err := chromedp.Do(ctx, chromedp.SetValue(testID("examples"), value))
	if err != nil {
		t.Fatal(err)
	}
	eval[bool](t, ctx, `document.querySelector('[data-testid="examples"]').dispatchEvent(new Event("change"))`)
}

// waitRun waits until the job the page started has finished.
func waitRun(t *testing.T, ctx context.Context) {
	t.Helper()
	err := poll(ctx, `document.querySelector('[data-testid="run"]').textContent === "Run" &&
		document.getElementById("status").textContent !== "Running…"`)
	if err != nil {
		t.Fatalf("waiting for the run to end: %v (status %q)", err, pageText(t, ctx, "error"))
	}
}

// typeScript replaces the editor's text as a user typing would, then runs
// it with Ctrl+Enter.
func typeScript(t *testing.T, ctx context.Context, src string) {
	t.Helper()
	insert := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: src})
		return err
	})
	err := chromedp.Do(ctx,
		chromedp.Click(testID("script")),
		chromedp.KeyEvent("a", chromedp.KeyModifiers(chromedp.ModifierCtrl)),
		insert,
		chromedp.KeyEvent("\r", chromedp.KeyModifiers(chromedp.ModifierCtrl)))
	if err != nil {
		t.Fatalf("typing the script: %v", err)
	}
}

func jsonOf(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %q", s)
	}
	return v
}

func TestPlayground(t *testing.T) {
	ctx, requests := openPage(t, shared.URL, 1280, 900)

	// Pick an example and run it with the button.
	pickExample(t, ctx, "seed-3-print-statements")
	if err := chromedp.Do(ctx, chromedp.Click(testID("run"))); err != nil {
		t.Fatal(err)
	}
	waitRun(t, ctx)
	if diff := cmp.Diff(map[string]any{"answer": 50.0}, jsonOf(t, pageText(t, ctx, "result"))); diff != "" {
		t.Errorf("example's result (-want +got):\n%s", diff)
	}
	if got := pageText(t, ctx, "stdout"); got != "Starting calculation...\nResult is 50\n" {
		t.Errorf("example's stdout %q", got)
	}

	// Type a script and run it with Ctrl+Enter.
	typeScript(t, ctx, "import sys\n\ndef main():\n    print('typed', 6 * 7)\n    print('to stderr', file=sys.stderr)\n    return {'n': 42}\n")
	waitRun(t, ctx)
	if diff := cmp.Diff(map[string]any{"n": 42.0}, jsonOf(t, pageText(t, ctx, "result"))); diff != "" {
		t.Errorf("typed script's result (-want +got):\n%s", diff)
	}
	if out, errOut := pageText(t, ctx, "stdout"), pageText(t, ctx, "stderr"); out != "typed 42\n" || errOut != "to stderr\n" {
		t.Errorf("typed script's stdout %q, stderr %q", out, errOut)
	}

	// The share link holds the script: opened afresh, it runs the same.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#share"))); err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, `document.getElementById("share-link").value.includes("#z=")`); err != nil {
		t.Fatalf("no share link: %v", err)
	}
	link := eval[string](t, ctx, `document.getElementById("share-link").value`)
	if !strings.HasPrefix(link, shared.URL+"/#z=") {
		t.Fatalf("share link %q", link)
	}
	checkPolicy(t, ctx) // before leaving the page
	if diff := cmp.Diff(map[string]any{"n": 42.0}, openAndRun(t, ctx, "about:blank", link)); diff != "" {
		t.Errorf("shared script's result (-want +got):\n%s", diff)
	}
	// The page remembers the last script: opened again without a link,
	// it has it still.
	checkPolicy(t, ctx)
	if diff := cmp.Diff(map[string]any{"n": 42.0}, openAndRun(t, ctx, shared.URL+"/")); diff != "" {
		t.Errorf("remembered script's result (-want +got):\n%s", diff)
	}

	// A link followed in the open page (its fragment changed, as a page
	// of another site holding its window could: round 13) replaces the
	// script only once the user confirms.
	other := shareLink(t, "def main():\n    return 'swapped'")
	text := `document.querySelector('[data-testid="script"]').textContent`
	before := eval[string](t, ctx, text)
	eval[bool](t, ctx, `(window.confirm = (m) => { window.asked = m; return false; }, true)`)
	eval[string](t, ctx, `location.hash = "`+other+`"`)
	if err := poll(ctx, `window.asked !== undefined`); err != nil {
		t.Fatalf("a new link replaced the script without asking: %v", err)
	}
	if got := eval[string](t, ctx, text); got != before {
		t.Errorf("declined, the editor holds %q, want %q", got, before)
	}
	eval[bool](t, ctx, `(window.confirm = () => true, true)`)
	eval[string](t, ctx, `location.hash = "#"`)
	eval[string](t, ctx, `location.hash = "`+other+`"`)
	if err := poll(ctx, text+`.includes("swapped")`); err != nil {
		t.Errorf("confirmed, the link's script did not replace the editor's: %v", err)
	}

	// Files the job wrote are offered as downloads.
	downloads := t.TempDir()
	allowDownloads := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads})
		return err
	})
	pickExample(t, ctx, "file-write-a-csv-to-download")
	if err := chromedp.Do(ctx, allowDownloads, chromedp.Click(testID("run"))); err != nil {
		t.Fatal(err)
	}
	waitRun(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#files a[download="report.csv"]`))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "report.csv to be downloaded", func() bool {
		b, err := os.ReadFile(filepath.Join(downloads, "report.csv"))
		return err == nil && strings.HasPrefix(string(b), "month,total,share\njan,3,")
	})

	// An exception: the error names it, and its line is marked.
	typeScript(t, ctx, "def main():\n    x = 1\n    return x / 0\n")
	waitRun(t, ctx)
	marked := eval[int](t, ctx, `document.querySelectorAll(".cm-error-line").length`)
	if msg := pageText(t, ctx, "error"); !strings.Contains(msg, "ZeroDivisionError: division by zero (line 3)") || marked != 1 {
		t.Errorf("error %q, %d lines marked", msg, marked)
	}

	// Output arrives while the job runs, and Stop cancels it.
	typeScript(t, ctx, "import time\n\ndef main():\n    print('first')\n    time.sleep(25)\n    return 1\n")
	err := poll(ctx, `document.querySelector('[data-testid="stdout"]').textContent === "first\n" &&
		document.querySelector('[data-testid="run"]').textContent === "Stop"`)
	if err == nil {
		err = chromedp.Do(ctx, chromedp.Click(testID("run")))
	}
	if err != nil {
		t.Fatalf("live output: %v (stdout %q)", err, pageText(t, ctx, "stdout"))
	}
	waitRun(t, ctx)
	if s := pageText(t, ctx, "result"); s != "" {
		t.Errorf("a stopped job has a result: %q", s)
	}

	// Tab indents in the editor; Escape then Tab leaves it for the next
	// control.
	err = chromedp.Do(ctx, chromedp.Click(testID("script")), chromedp.KeyEvent(kb.Escape), chromedp.KeyEvent(kb.Tab))
	if err != nil {
		t.Fatal(err)
	}
	if id := eval[string](t, ctx, `document.activeElement.id`); id != "input" {
		t.Errorf("Escape, Tab in the editor: focus on %q, want the Input box", id)
	}

	// Nothing left the page's origin, and the policy blocked nothing.
	executes := 0
	for _, u := range requests() {
		if !strings.HasPrefix(u, shared.URL+"/") && !strings.HasPrefix(u, "data:") {
			t.Errorf("the page requested %s", u)
		}
		if u == shared.URL+"/v1/execute" {
			executes++
		}
	}
	// One per run: the listener saw them all, and Ctrl+Enter runs once.
	if executes != 7 {
		t.Errorf("saw %d requests to /v1/execute, want 7", executes)
	}
	checkPolicy(t, ctx)
}

// checkPolicy fails the test if the page's Content-Security-Policy blocked
// anything since the page was loaded.
func checkPolicy(t *testing.T, ctx context.Context) {
	t.Helper()
	// Input.insertText with newlines makes Chromium's own editing code add
	// style attributes to the editor's lines, which the policy blocks and
	// CodeMirror replaces at once; typing and pasting do not.
	if v := eval[string](t, ctx, `JSON.stringify(window.cspViolations.filter((v) =>
		!(v.inEditor && v.directive === "style-src-attr")))`); v != "[]" {
		t.Errorf("Content-Security-Policy violations: %s", v)
	}
}

// TestPlaygroundExamples: the examples menu has the seed's ten cases, with
// their scripts verbatim, and a plot, a file and an input example.
func TestPlaygroundExamples(t *testing.T) {
	raw, err := os.ReadFile("../../internal/playground/static/examples.json")
	if err != nil {
		t.Fatal(err)
	}
	var examples []struct{ Name, Script, Input string }
	if err := json.Unmarshal(raw, &examples); err != nil {
		t.Fatal(err)
	}
	byPrefix := map[string]string{}
	for _, e := range examples {
		prefix, _, _ := strings.Cut(e.Name, ":")
		byPrefix[prefix] = e.Script
		if e.Input != "" && !json.Valid([]byte(e.Input)) {
			t.Errorf("%s: input is not JSON", e.Name)
		}
	}
	want := map[string]string{"Seed 9": "def main():\n    return {invalid syntax here}"}
	for _, tc := range seedScripts {
		n, _, _ := strings.Cut(tc.name, " ")
		want["Seed "+n] = tc.script
	}
	for prefix, script := range want {
		if byPrefix[prefix] != script {
			t.Errorf("%s: script %q, want the seed's %q", prefix, byPrefix[prefix], script)
		}
	}
	for _, prefix := range []string{"Seed 1", "Plot", "File", "Input"} {
		if byPrefix[prefix] == "" {
			t.Errorf("no %q example", prefix)
		}
	}
}

// TestPlaygroundAPIKey: on a server that requires keys the page asks for
// one and sends it.
func TestPlaygroundAPIKey(t *testing.T) {
	if binary == "" {
		t.Skip("starts a server of its own")
	}
	s := startServerAs(t, -1, []string{"PYEXEC_API_KEYS=k1"}, "--pool-size", "1")
	ctx, _ := openPage(t, s.URL, 1280, 900)
	if err := poll(ctx, `!document.getElementById("key-field").hidden`); err != nil {
		t.Fatalf("no API key field: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(testID("run"))); err != nil {
		t.Fatal(err)
	}
	waitRun(t, ctx)
	if msg := pageText(t, ctx, "error"); !strings.Contains(msg, "HTTP 401") {
		t.Errorf("without a key: error %q", msg)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#api-key"), "k1"), chromedp.Click(testID("run"))); err != nil {
		t.Fatal(err)
	}
	waitRun(t, ctx)
	if diff := cmp.Diff(map[string]any{"message": "Hello, World!", "value": 42.0}, jsonOf(t, pageText(t, ctx, "result"))); diff != "" {
		t.Errorf("with the key (-want +got):\n%s", diff)
	}
}

// TestPlaygroundScreenshots saves screenshots for a person to look at, when
// PYEXEC_SCREENSHOTS names a directory: light and dark themes after running
// the plot example, and a phone-sized screen.
func TestPlaygroundScreenshots(t *testing.T) {
	dir := os.Getenv("PYEXEC_SCREENSHOTS")
	if dir == "" {
		t.Skip("set PYEXEC_SCREENSHOTS=dir to save screenshots of the playground")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, shot := range []struct {
		name          string
		width, height int64
		theme         string
		example       string
	}{
		{"light", 1400, 1000, "light", "plot-a-matplotlib-figure"},
		{"dark", 1400, 1000, "dark", "exception-traceback-and-failing-line"},
		{"phone", 390, 844, "light", "input-main-input-with-json-data"},
		{"phone-dark", 390, 844, "dark", "file-write-a-csv-to-download"},
	} {
		t.Run(shot.name, func(t *testing.T) {
			ctx, _ := openPage(t, shared.URL, shot.width, shot.height)
			eval[any](t, ctx, `localStorage.setItem("theme", "`+shot.theme+`")`)
			if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
				t.Fatal(err)
			}
			if err := poll(ctx, `document.body.dataset.ready === "true"`); err != nil {
				t.Fatal(err)
			}
			pickExample(t, ctx, shot.example)
			if err := chromedp.Do(ctx, chromedp.Click(testID("run"))); err != nil {
				t.Fatal(err)
			}
			waitRun(t, ctx)
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, shot.name+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// shareLink is the fragment of a share link for script, as the page makes
// it: raw deflate of {"script", "input", "timeout"}, base64url.
func shareLink(t *testing.T, script string) string {
	t.Helper()
	state, _ := json.Marshal(map[string]string{"script": script, "input": "", "timeout": ""})
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	w.Write(state)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return "#z=" + base64.RawURLEncoding.EncodeToString(b.Bytes())
}

// openAndRun navigates to each of urls in turn, waits for the page to be
// ready, runs its script and returns the result pane's JSON.
func openAndRun(t *testing.T, ctx context.Context, urls ...string) any {
	t.Helper()
	var err error
	for _, u := range urls {
		if err == nil {
			err = chromedp.Do(ctx, chromedp.Navigate(u))
		}
	}
	if err == nil {
		err = poll(ctx, `document.body.dataset.ready === "true"`)
	}
	if err == nil {
		err = chromedp.Do(ctx, chromedp.Click(testID("run")))
	}
	if err != nil {
		t.Fatal(err)
	}
	waitRun(t, ctx)
	return jsonOf(t, pageText(t, ctx, "result"))
}
