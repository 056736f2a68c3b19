package worker

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Kind classifies how a job ended.
type Kind string

// Job outcomes. KindOK carries a result; every other kind carries an error
// message written for the script's author.
const (
	KindOK          Kind = "ok"
	KindSyntax      Kind = "syntax_error"
	KindNoMain      Kind = "missing_main"
	KindException   Kind = "exception"
	KindTimeout     Kind = "timeout"
	KindMemory      Kind = "memory_limit"
	KindDisk        Kind = "disk_limit"
	KindCPU         Kind = "cpu_limit"
	KindResultLimit Kind = "result_limit"
	KindExited      Kind = "exited"
	KindCrashed     Kind = "crashed"
	KindCorrupt     Kind = "result_corrupted"
)

// Job is one script to run.
type Job struct {
	Script  string
	Timeout time.Duration
	// V1, when set, asks for what POST /v1/execute adds to the seed API: an
	// input for main, files in, and diagnostics, files and images out
	// (Outcome.V1). Nil runs the job exactly as the seed API does.
	V1 *V1Job
	// Output, when set, is called with the job's stdout ("stdout") and
	// stderr ("stderr") as the job writes them, chunk by chunk as they are
	// read from the pipes, and only the bytes kept under the output limit:
	// the chunks of a stream add up to its Outcome text (before invalid
	// UTF-8 is replaced). It is called from the goroutines that read the
	// pipes, for both streams concurrently, never after Run returns; it
	// must not block, and chunk is only valid during the call.
	Output func(stream string, chunk []byte)
}

// V1Job is the part of a job only POST /v1/execute has. Its data travels
// in the job's memfd, like the script: the template never sees it.
type V1Job struct {
	Input    json.RawMessage // main(input)'s argument; nil: main() is called with none
	HasInput bool            // Input was given (it may be JSON null)
	Files    []File          // written into the job's working directory first
	// MemoryBytes and OutputBytes, when more than 0, lower the server's
	// memory limit and the stdout and stderr kept for this job.
	MemoryBytes int64
	OutputBytes int64
}

// File is a file in a job's working directory. Content is base64 (standard
// encoding, padded), as the API carries it.
type File struct {
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	Content string `json:"content"`
}

// Image is a matplotlib figure the job left open, rendered.
type Image struct {
	Format  string `json:"format"`
	Content string `json:"content"` // base64
}

// ErrorInfo describes how a script failed: the exception's class name (or
// the outcome, when no Python exception ended it), its message, the line of
// the script it came from, and a traceback of the script's own frames.
type ErrorInfo struct {
	Type      string  `json:"type"`
	Message   string  `json:"message"`
	Line      *int    `json:"line"`
	Traceback *string `json:"traceback"`
}

// V1Outcome is what a V1 job reports beyond the seed's result.
type V1Outcome struct {
	Error         *ErrorInfo // nil when main returned and its value serialized
	Files         []File     // created or changed in the working directory
	FilesOmitted  int
	Images        []Image
	ImagesOmitted int
	// CPUMillis and MemoryPeakMB are measured by the job process itself
	// (getrusage of itself and the processes it waited for); nil when it
	// did not live to report them (timeout, crash, kill).
	CPUMillis    *int64
	MemoryPeakMB *float64
}

// Outcome is what a job produced. Stdout is always what the job printed (up
// to the limit), whatever the Kind.
type Outcome struct {
	Kind            Kind
	Result          json.RawMessage // KindOK only: main()'s value as JSON
	Error           string          // every other Kind
	Stdout          string
	StdoutTruncated bool
	StdoutBytes     int64  // total printed, when truncated
	Stderr          string // what the job wrote to stderr, up to the stdout limit
	StderrTruncated bool
	Elapsed         time.Duration
	V1              *V1Outcome // V1 jobs only

	v1raw json.RawMessage // the result frame's "v1" member
}

// v1Frame is the "v1" member of a V1 job's result frame.
type v1Frame struct {
	ErrorInfo     *ErrorInfo `json:"error_info"`
	Files         []File     `json:"files"`
	FilesOmitted  int        `json:"files_omitted"`
	Images        []Image    `json:"images"`
	ImagesOmitted int        `json:"images_omitted"`
	Usage         *struct {
		CPUMillis    int64   `json:"cpu_ms"`
		MemoryPeakMB float64 `json:"memory_peak_mb"`
	} `json:"usage"`
}

// v1Outcome completes o.V1 from the result frame's "v1" member, and gives
// outcomes that no Python exception explains an ErrorInfo of their own.
func v1Outcome(o *Outcome, raw json.RawMessage, lim Limits) {
	v := &V1Outcome{}
	var f v1Frame
	if len(raw) > 0 && json.Unmarshal(raw, &f) == nil {
		v.Error = f.ErrorInfo
		v.FilesOmitted, v.ImagesOmitted = min(max(0, f.FilesOmitted), maxOmitted), min(max(0, f.ImagesOmitted), maxOmitted)
		// The job process collects its files itself, after its script ran:
		// what it reports is checked as anything else from a job is.
		budget := lim.OutputFilesBytes
		var tree fileTree
		for _, file := range f.Files {
			if n, ok := decoded(file.Content); ok && BadPath(file.Path) == "" && n == file.Size &&
				len(v.Files) < lim.OutputFiles && n <= budget && tree.add(file.Path) {
				v.Files, budget = append(v.Files, file), budget-n
			} else {
				v.FilesOmitted = min(v.FilesOmitted+1, maxOmitted)
			}
		}
		for _, img := range f.Images {
			if n, ok := decoded(img.Content); ok && img.Format == "png" && isPNG(img.Content) &&
				len(v.Images) < lim.OutputFiles && n <= budget {
				v.Images, budget = append(v.Images, img), budget-n
			} else {
				v.ImagesOmitted = min(v.ImagesOmitted+1, maxOmitted)
			}
		}
		if f.Usage != nil {
			cpu, mem := f.Usage.CPUMillis, f.Usage.MemoryPeakMB
			v.CPUMillis, v.MemoryPeakMB = &cpu, &mem
		}
	}
	if o.Kind == KindOK {
		v.Error = nil
	} else if v.Error == nil || !(o.Kind == KindException || o.Kind == KindSyntax ||
		o.Kind == KindMemory && v.Error.Type == "MemoryError") {
		// No exception, or not the one that ended the job (the template's
		// time or memory limit, a crash, a corrupt or oversized result).
		v.Error = &ErrorInfo{Type: string(o.Kind), Message: o.Error}
	}
	if v.Files == nil {
		v.Files = []File{}
	}
	if v.Images == nil {
		v.Images = []Image{}
	}
	o.V1 = v
}

// resultTooLarge is the error of a result over the limit, whether the
// result frame or main()'s value is.
const resultTooLarge = "Result too large: exceeds the result limit of %d bytes"

// maxOmitted caps the omitted counts a job reports: more entries than a
// job may make.
const maxOmitted = 1 << 20

// fileTree holds the paths of the files an answer returns, so that no two
// name the same file and none names a directory of another: a client that
// writes them out would lose one (outside attack round 21 returned two
// files under one path, forged, and two non-UTF-8 names that decoded
// alike).
type fileTree struct {
	files, dirs map[string]bool
}

// add records path and reports whether it fits the files before it.
func (t *fileTree) add(path string) bool {
	if t.files == nil {
		t.files, t.dirs = map[string]bool{}, map[string]bool{}
	}
	if t.files[path] || t.dirs[path] {
		return false
	}
	for i := range len(path) {
		if path[i] == '/' && t.files[path[:i]] {
			return false
		}
	}
	t.files[path] = true
	for i := range len(path) {
		if path[i] == '/' {
			t.dirs[path[:i]] = true
		}
	}
	return true
}

// pngSignature begins every PNG file.
const pngSignature = "\x89PNG\r\n\x1a\n"

// isPNG reports whether base64 content begins with the PNG signature: an
// image the job says is a PNG is one (the job collects its images itself,
// and a forged SVG could carry script).
func isPNG(content string) bool {
	if len(content) < 12 {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(content[:12])
	return err == nil && strings.HasPrefix(string(b), pngSignature)
}

// decoded returns the length of standard, padded base64 content, and
// whether it is that.
func decoded(content string) (int64, bool) {
	b, err := base64.StdEncoding.DecodeString(content)
	return int64(len(b)), err == nil
}

// meta is the worker's "done" frame.
type meta struct {
	Type      string `json:"type"`
	Status    string `json:"status"`
	ExitCode  int    `json:"exit_code"`
	Signal    int    `json:"signal"`
	ElapsedMS int64  `json:"elapsed_ms"`
	Error     string `json:"error"` // type "fatal"

	UnnamedLimitBytes int64 `json:"unnamed_limit_bytes"` // status "disk_limit_unnamed"
	EntriesLimit      int   `json:"entries_limit"`       // status "file_limit"
	DepthLimit        int   `json:"depth_limit"`         // status "disk_too_deep"

	Python *PythonInfo `json:"python"` // a probe's "ready"

	// A warm template's first "ready": which process forks the job
	// processes, "zygote" or "template", and why not the zygote.
	Forker   string `json:"forker"`
	NoZygote string `json:"no_zygote"`
}

// childResult is the frame the job process writes after main() returns:
// {"result": value} or {"error": "...", "kind": "..."}. Presence matters
// ("result": null is a result), so it is decoded key by key.
type childResult map[string]json.RawMessage

var childKinds = map[string]Kind{
	"syntax":       KindSyntax,
	"no_main":      KindNoMain,
	"exception":    KindException,
	"memory":       KindMemory,
	"result_limit": KindResultLimit,
	"internal":     KindCrashed,
}

// outcome turns the template's "done" frame and what the result pipe held
// into an Outcome (without stdout, which the caller fills in). Limits name
// themselves in the messages.
func outcome(m *meta, res *resultBody, job Job, lim Limits) Outcome {
	o := Outcome{Elapsed: time.Duration(m.ElapsedMS) * time.Millisecond}
	body := res.Payload
	fail := func(k Kind, format string, args ...any) Outcome {
		o.Kind, o.Error = k, fmt.Sprintf(format, args...)
		return o
	}
	switch {
	case m.Status == "timeout":
		return fail(KindTimeout, "Time limit exceeded: the script ran for more than %s", job.Timeout)
	case m.Status == "disk_limit":
		return fail(KindDisk, "Disk limit exceeded: a job's files together may take at most %d MiB; the job was killed", lim.FileBytes>>20)
	case m.Status == "disk_limit_unnamed":
		return fail(KindDisk, "Disk limit exceeded: the disk lost more than %d MiB while the job ran "+
			"(files without a name, deleted while open or O_TMPFILE, count too); the job was killed", m.UnnamedLimitBytes>>20)
	case m.Status == "file_limit":
		return fail(KindDisk, "Disk limit exceeded: a job may make at most %d files and directories "+
			"(each costs kernel memory, even empty); the job was killed", m.EntriesLimit)
	case m.Status == "disk_too_deep":
		return fail(KindDisk, "Disk limit exceeded: a job's directories may nest at most %d deep "+
			"(deeper ones could not be measured against the limit); the job was killed", m.DepthLimit)
	case m.Status == "disk_unreadable":
		return fail(KindDisk, "Disk limit exceeded: the job made a directory that it then made unreadable, "+
			"so its files could not be measured against the limit; the job was killed")
	case m.Status == "file_table_limit":
		return fail(KindMemory, "Open files limit exceeded: the host's open files grew by more than %d while the job ran "+
			"(a file a job maps stays open after its descriptor is closed; other jobs' files count too); the job was killed",
			lim.FileTableGrowth)
	case m.Status == "memory_limit":
		return fail(KindMemory, "Memory limit exceeded: the job's processes together may use at most %d MiB; the job was killed", lim.MemoryBytes>>20)
	case res.Corrupt:
		return fail(KindCorrupt, "The script wrote to the worker's private result channel; its result was discarded")
	case res.TooLarge:
		return fail(KindResultLimit, resultTooLarge, lim.ResultBytes)
	case len(body) > 0:
		var r childResult
		var msg, kind string
		err := json.Unmarshal(body, &r)
		result, isResult := r["result"]
		if err == nil && !isResult {
			err = json.Unmarshal(r["error"], &msg)
			json.Unmarshal(r["kind"], &kind)
		}
		keys := len(r)
		extra, hasExtra := r["v1"]
		if hasExtra && job.V1 != nil {
			keys--
		}
		if err != nil || keys == 0 || (isResult && keys != 1) {
			return fail(KindCorrupt, "The script wrote to the worker's private result channel; its result was discarded")
		}
		if !isResult {
			k, ok := childKinds[kind]
			if !ok {
				k = KindException
			}
			o = fail(k, "%s", msg)
		} else if len(result) > int(lim.ResultBytes) {
			// The job measures its result itself: a script can skip that.
			o = fail(KindResultLimit, resultTooLarge, lim.ResultBytes)
		} else {
			o.Kind, o.Result = KindOK, result
		}
		if job.V1 != nil {
			o.v1raw = extra
		}
		return o
	case m.Status == "signaled":
		return fail(signalKind(m.Signal), "%s", signalMessage(m.Signal, lim))
	}
	return fail(KindExited, "The script exited with code %d before main() returned (os._exit or a C extension called exit)", m.ExitCode)
}

func signalKind(sig int) Kind {
	if unix.Signal(sig) == unix.SIGXCPU {
		return KindCPU
	}
	if unix.Signal(sig) == unix.SIGKILL {
		return KindExited
	}
	return KindCrashed
}

func signalMessage(sig int, lim Limits) string {
	s := unix.Signal(sig)
	switch s {
	case unix.SIGXCPU:
		return "CPU time limit exceeded: the script used more CPU time than its time limit allows"
	case unix.SIGSEGV:
		return "The script crashed with a segmentation fault (SIGSEGV); a C extension, ctypes or a stack overflow from deep recursion can cause this"
	case unix.SIGKILL:
		return "The script's process was killed (SIGKILL)"
	case unix.SIGXFSZ:
		return fmt.Sprintf("File size limit exceeded: a job may write files of at most %d bytes", lim.FileBytes)
	case unix.SIGSYS:
		return "The script made a system call the sandbox forbids (SIGSYS)"
	}
	return fmt.Sprintf("The script's process was killed by signal %s (%s)", unix.SignalName(s), s)
}
