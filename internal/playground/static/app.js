// The playground: runs the editor's script through POST /v1/execute with
// Accept: text/event-stream and shows the output as it arrives. Nothing here
// talks to any origin but the page's own.
import { createEditor } from "./editor.js";

// The examples: the seed's ten test cases, then what POST /v1/execute adds.
// Each has a name, a script and optionally an input (JSON text), a timeout
// and "default" (shown on a first visit).
const examples = await (await fetch("/playground/examples.json")).json();

const $ = (id) => document.getElementById(id);
const slug = (s) => s.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");

let running = null; // the AbortController of the job in flight
let fileURLs = []; // blob: URLs of the last run's files, revoked on the next

// Content-Security-Policy violations, for the browser test to see.
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.cspViolations.push({
    directive: e.effectiveDirective, blocked: e.blockedURI, source: `${e.sourceFile}:${e.lineNumber}`,
    inEditor: e.target instanceof Element && e.target.closest(".cm-content") !== null,
  });
});

const editor = createEditor($("editor"), {
  nonce: document.querySelector('meta[name="csp-nonce"]').content,
  onRun: () => run(),
  onChange: () => {
    if (document.activeElement !== $("examples")) $("examples").value = "";
    remember();
  },
  contentAttributes: { "data-testid": "script", "aria-label": "Python script", "aria-describedby": "editor-help" },
});

// ---------------------------------------------------------------- examples

function fillExamples() {
  const sel = $("examples");
  sel.append(new Option("Choose an example…", ""));
  for (const ex of examples) sel.append(new Option(ex.name, slug(ex.name)));
  sel.addEventListener("change", () => {
    const ex = examples.find((e) => slug(e.name) === sel.value);
    if (!ex) return;
    load({ script: ex.script, input: ex.input || "", timeout: ex.timeout || "" });
    sel.value = slug(ex.name); // the edit above reset it
  });
}

function load({ script = "", input = "", timeout = "" }) {
  editor.setText(script);
  $("input").value = input;
  $("timeout").value = timeout;
  clearOutput();
  $("status").textContent = "Ready.";
}

// ---------------------------------------------------------------- running

function clearOutput() {
  pending.stdout = pending.stderr = "";
  $("result").dataset.empty = "what main() returns";
  for (const id of ["stdout", "stderr", "result", "raw", "error-message", "error-traceback"]) $(id).textContent = "";
  $("images").replaceChildren();
  $("files").replaceChildren();
  fileURLs.forEach((u) => URL.revokeObjectURL(u));
  fileURLs = [];
  for (const id of ["error", "error-traceback", "stderr-block", "images-block", "files-block", "raw-block"]) $(id).hidden = true;
  editor.markLine(null);
}

function showError(message, traceback) {
  $("error-message").textContent = message;
  $("error-traceback").textContent = traceback || "";
  $("error-traceback").hidden = !traceback;
  $("error").hidden = false;
}

// Output arrives in many small chunks: gather them and touch the DOM once
// per frame.
const pending = { stdout: "", stderr: "" };
let frame = 0;
function append(stream, text) {
  pending[stream] += text;
  if (!frame) frame = requestAnimationFrame(flushOutput);
}

function flushOutput() {
  frame = 0;
  for (const stream of ["stdout", "stderr"]) {
    if (!pending[stream]) continue;
    const pre = $(stream);
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(pending[stream]);
    pending[stream] = "";
    if (stream === "stderr") $("stderr-block").hidden = false;
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  }
}

function setRunning(ctrl) {
  running = ctrl;
  const btn = $("run");
  btn.textContent = ctrl ? "Stop" : "Run";
  btn.classList.toggle("stop", !!ctrl);
  btn.setAttribute("aria-busy", ctrl ? "true" : "false");
}

async function run() {
  if (running) {
    running.abort();
    return;
  }
  clearOutput();
  const body = { script: editor.getText() };
  const inputText = $("input").value.trim();
  if (inputText !== "") {
    try {
      body.input = JSON.parse(inputText);
    } catch (e) {
      showError("The Input box is not valid JSON: " + e.message);
      $("status").textContent = "Not run.";
      return;
    }
  }
  const timeout = $("timeout").value.trim();
  if (timeout !== "") body.timeout = Number(timeout);
  const headers = { "Content-Type": "application/json", Accept: "text/event-stream" };
  const key = $("api-key").value.trim();
  if (key) headers.Authorization = "Bearer " + key;

  const ctrl = new AbortController();
  setRunning(ctrl);
  $("status").textContent = "Running…";
  // One column (a phone): bring the output into view.
  if (matchMedia("(max-width: 820px)").matches) $("out-heading").scrollIntoView({ behavior: "smooth", block: "start" });
  const started = performance.now();
  try {
    const resp = await fetch("/v1/execute", { method: "POST", headers, body: JSON.stringify(body), signal: ctrl.signal });
    const type = resp.headers.get("Content-Type") || "";
    if (type.startsWith("text/event-stream")) {
      await readEvents(resp.body, (name, data) => {
        if (name === "stdout" || name === "stderr") append(name, JSON.parse(data));
        else if (name === "result") showResult(JSON.parse(data));
        else if (name === "error") {
          const e = JSON.parse(data);
          showError(`HTTP ${e.status}: ${e.error}`);
          $("status").textContent = "Failed.";
        }
      });
    } else {
      const text = await resp.text();
      let e;
      try { e = JSON.parse(text); } catch { e = { error: text }; }
      if (resp.ok && e.outcome) showResult(e);
      else {
        showError(`HTTP ${resp.status}: ${e.error || resp.statusText}`);
        $("status").textContent = resp.status === 401 ? "Needs an API key." : "Not run.";
        if (resp.status === 401) { $("key-field").hidden = false; $("api-key").focus(); }
      }
    }
  } catch (e) {
    if (e.name === "AbortError") $("status").textContent = `Stopped after ${((performance.now() - started) / 1000).toFixed(1)} s; the job was cancelled.`;
    else { showError("Could not reach the server: " + e.message); $("status").textContent = "Failed."; }
  } finally {
    setRunning(null);
  }
}

// readEvents parses a server-sent event stream, calling onEvent(name, data).
async function readEvents(stream, onEvent) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
        if (field === "event") name = val;
        else if (field === "data") data.push(val);
      }
      if (data.length) onEvent(name, data.join("\n"));
    }
  }
}

function showResult(r) {
  pending.stdout = pending.stderr = "";
  // The result's stdout and stderr are the streamed chunks, whole.
  $("stdout").textContent = r.stdout + (r.stdout_truncated ? "\n[… truncated at the stdout limit]" : "");
  $("stderr").textContent = r.stderr + (r.stderr_truncated ? "\n[… truncated at the limit]" : "");
  $("stderr-block").hidden = r.stderr === "";
  $("result").textContent = r.outcome === "ok" ? JSON.stringify(r.result, null, 2) : "";
  if (r.outcome !== "ok") $("result").dataset.empty = `no result: ${r.outcome}`;
  $("raw").textContent = JSON.stringify(r, null, 2);
  $("raw-block").hidden = false;
  if (r.error) {
    const where = r.error.line ? ` (line ${r.error.line})` : "";
    showError(`${r.error.type}: ${r.error.message}${where}`, r.error.traceback);
    editor.markLine(r.error.line || null);
  }
  r.images.forEach((img, i) => {
    const el = document.createElement("img");
    el.src = `data:image/${img.format};base64,${img.content}`;
    el.alt = `Figure ${i + 1} of ${r.images.length}, drawn by the script`;
    $("images").append(el);
  });
  $("images-block").hidden = r.images.length === 0;
  for (const f of r.files) {
    const bytes = Uint8Array.from(atob(f.content), (c) => c.charCodeAt(0));
    const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
    fileURLs.push(url);
    const a = document.createElement("a");
    a.href = url;
    a.download = f.path.split("/").pop();
    a.textContent = f.path;
    const li = document.createElement("li");
    li.append(a, ` ${f.size} bytes`);
    $("files").append(li);
  }
  $("files-block").hidden = r.files.length === 0;
  const u = r.usage;
  const parts = [r.outcome, `${u.wall_ms} ms`];
  if (u.cpu_ms != null) parts.push(`${u.cpu_ms} ms CPU`);
  if (u.memory_peak_mb != null) parts.push(`${u.memory_peak_mb} MiB peak`);
  if (r.images_omitted || r.files_omitted) parts.push(`${r.images_omitted} images and ${r.files_omitted} files left out`);
  $("status").textContent = parts.join(" · ");
  $("status").dataset.outcome = r.outcome;
}

// ---------------------------------------------------------------- sharing

// The link holds the script (and input and timeout) in its fragment, which
// never reaches a server: deflated, base64url, after "#z=".
async function share() {
  const state = { script: editor.getText() };
  if ($("input").value.trim()) state.input = $("input").value;
  if ($("timeout").value.trim()) state.timeout = $("timeout").value.trim();
  const data = new TextEncoder().encode(JSON.stringify(state));
  const packed = new Uint8Array(await new Response(new Blob([data]).stream().pipeThrough(new CompressionStream("deflate-raw"))).arrayBuffer());
  let bin = "";
  packed.forEach((b) => { bin += String.fromCharCode(b); });
  const frag = "z=" + btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  history.replaceState(null, "", "#" + frag);
  const link = $("share-link");
  link.value = location.href;
  $("share-box").hidden = false;
  link.focus();
  link.select();
  try {
    await navigator.clipboard.writeText(location.href);
    $("share-note").textContent = "Copied to the clipboard.";
  } catch {
    $("share-note").textContent = "Copy the selected link.";
  }
}

async function fromFragment(ask) {
  const m = /^#z=([A-Za-z0-9_-]+)$/.exec(location.hash);
  if (!m) return false;
  try {
    const b64 = m[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const text = await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate-raw"))).text();
    const state = JSON.parse(text);
    const script = String(state.script || "");
    // A link followed in an open page replaces its script only if the user
    // says so: the page that opened this window may change its fragment.
    if (ask && script !== editor.getText() && !confirm("Replace the script in the editor with the link's?")) return false;
    load({ script, input: String(state.input || ""), timeout: String(state.timeout || "") });
    $("examples").value = "";
    return true;
  } catch {
    $("status").textContent = "The link's script could not be read.";
    return false;
  }
}

// The last script, input and timeout stay in this browser (localStorage)
// and come back on the next visit, unless a shared link says otherwise.
let saveTimer = 0;
function remember() {
  clearTimeout(saveTimer);
  saveTimer = setTimeout(save, 400);
}

function save() {
  clearTimeout(saveTimer);
  const state = { script: editor.getText(), input: $("input").value, timeout: $("timeout").value };
  try { localStorage.setItem("playground", JSON.stringify(state)); } catch { /* private mode, full */ }
}

function recall() {
  try {
    const state = JSON.parse(localStorage.getItem("playground") || "null");
    if (state && typeof state.script === "string") {
      load({ script: state.script, input: String(state.input || ""), timeout: String(state.timeout || "") });
      return true;
    }
  } catch { /* nothing usable */ }
  return false;
}

// ---------------------------------------------------------------- server, theme

async function serverInfo() {
  try {
    const h = await (await fetch("/health")).json();
    $("health").textContent = h.status === "healthy" ? "● server healthy" : "● server: " + h.status;
    $("health").dataset.ok = h.status === "healthy";
  } catch {
    $("health").textContent = "● server unreachable";
    $("health").dataset.ok = false;
  }
  try {
    const info = await (await fetch("/info")).json();
    $("key-field").hidden = !info.auth;
    const lim = info.limits || {};
    if (lim.max_timeout_s) {
      $("timeout").max = lim.max_timeout_s;
      $("timeout").placeholder = `default ${lim.default_timeout_s}, at most ${lim.max_timeout_s}`;
    }
  } catch { /* the fields keep their defaults */ }
}

const themes = ["auto", "light", "dark"];
function setTheme(t) {
  if (t === "auto") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = t;
  const btn = $("theme");
  btn.textContent = { auto: "◐ Auto", light: "☀ Light", dark: "☾ Dark" }[t];
  btn.setAttribute("aria-label", t === "auto" ? "Theme: follows the system" : `Theme: ${t}`);
  try { localStorage.setItem("theme", t); } catch { /* private mode */ }
}

// ---------------------------------------------------------------- start

fillExamples();
$("run").addEventListener("click", () => run());
$("share").addEventListener("click", () => share());
$("theme").addEventListener("click", () => {
  const cur = document.documentElement.dataset.theme || "auto";
  setTheme(themes[(themes.indexOf(cur) + 1) % themes.length]);
});
document.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && !e.defaultPrevented) {
    e.preventDefault();
    run();
  }
});
window.addEventListener("hashchange", () => fromFragment(true));
let saved = "auto";
try { saved = localStorage.getItem("theme") || "auto"; } catch { /* private mode */ }
setTheme(themes.includes(saved) ? saved : "auto");
if (!(await fromFragment()) && !recall()) load(examples.find((e) => e.default) || examples[0]);
const shown = examples.find((e) => e.script === editor.getText());
$("examples").value = shown ? slug(shown.name) : "";
$("input").addEventListener("input", remember);
$("timeout").addEventListener("input", remember);
window.addEventListener("pagehide", save);
serverInfo();
document.body.dataset.ready = "true";
