package worker

import (
	"encoding/json"
	"fmt"
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
	Elapsed         time.Duration
}

// meta is the worker's "done" frame.
type meta struct {
	Type      string `json:"type"`
	Status    string `json:"status"`
	ExitCode  int    `json:"exit_code"`
	Signal    int    `json:"signal"`
	ElapsedMS int64  `json:"elapsed_ms"`
	Error     string `json:"error"` // type "fatal"
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
	case m.Status == "memory_limit":
		return fail(KindMemory, "Memory limit exceeded: the job's processes together may use at most %d MiB; the job was killed", lim.MemoryBytes>>20)
	case res.Corrupt:
		return fail(KindCorrupt, "The script wrote to the worker's private result channel; its result was discarded")
	case res.TooLarge:
		return fail(KindResultLimit, "Result too large: exceeds the result limit of %d bytes", lim.ResultBytes)
	case len(body) > 0:
		var r childResult
		var msg, kind string
		err := json.Unmarshal(body, &r)
		result, isResult := r["result"]
		if err == nil && !isResult {
			err = json.Unmarshal(r["error"], &msg)
			json.Unmarshal(r["kind"], &kind)
		}
		if err != nil || len(r) == 0 || (isResult && len(r) != 1) {
			return fail(KindCorrupt, "The script wrote to the worker's private result channel; its result was discarded")
		}
		if !isResult {
			k, ok := childKinds[kind]
			if !ok {
				k = KindException
			}
			return fail(k, "%s", msg)
		}
		o.Kind, o.Result = KindOK, result
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
