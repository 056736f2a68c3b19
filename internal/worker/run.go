package worker

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ackTimeout bounds how long a template may take to acknowledge a job. It
// may first have to replace a waiting child that the previous job disturbed
// (a fork and, for the warm child, a 5 ms warm-up).
const ackTimeout = 5 * time.Second

// cancelGrace bounds how long a cancelled job's template has to confirm
// that it killed the job before the worker is given up.
const cancelGrace = 2 * time.Second

// drainTimeout bounds the wait for the job's pipes to reach EOF once the
// template has said every process of the job is dead.
const drainTimeout = 2 * time.Second

// killTimeout bounds how much longer than the backstop a template may take
// to kill a job's processes, as long as it says every second that it is at
// it (a "dying" frame): the kernel can take seconds to tear down a process
// that holds millions of epoll watches. The template is told it
// (kill_timeout_s) and gives up killing then.
const killTimeout = 60 * time.Second

// Run runs one job. A nil error means the worker answered as the protocol
// says and the Outcome describes the job, whatever happened to the script;
// the caller must then call WaitReady before the next Run.
//
// An error leaves the worker unusable (Kill it) unless Reusable(err): the
// request's ctx ended, the template killed the job and confirmed it, and the
// worker may go back to the pool after WaitReady. Errors from before the
// template acknowledged the job wrap ErrNotDelivered: no job process has
// seen the script, so the job is safe to retry on another worker.
//
// The script, its output and its result travel between this process and the
// job process only, on a memfd and pipes whose descriptors the template
// passes on without reading: a template never holds a job's data.
func (w *Worker) Run(ctx context.Context, job Job) (Outcome, error) {
	w.jobsRun.Add(1)
	p, err := newJobPipes(job, w.cfg.Limits)
	if err != nil {
		return Outcome{}, fmt.Errorf("%w: %v", ErrNotDelivered, err)
	}
	defer p.close()
	if err := w.deliver(job, p); err != nil {
		return Outcome{}, fmt.Errorf("%w: %w", ErrNotDelivered, err)
	}
	if err := w.awaitAck(); err != nil {
		return Outcome{}, fmt.Errorf("%w: %w", ErrNotDelivered, err)
	}

	// From here the job may run. A cancelled request kills the job, not the
	// worker: the template is told, and the worker survives if it confirms.
	// As pgconn's ctxwatch does, Run does not return while the cancel is
	// being sent, so that a late cancel can never reach the next job.
	cancelSent := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(cancelSent)
		w.send(map[string]string{"type": "cancel"})
	})
	defer func() {
		if !stop() {
			<-cancelSent
		}
	}()

	ooms := w.proc.OOMKills()
	backstop := time.NewTimer(job.Timeout + grace)
	defer backstop.Stop()
	dyingUntil := time.Now().Add(job.Timeout + grace + killTimeout)
	var done *meta
	var drain, cancelled <-chan time.Time
	frames := w.frames
	outDone, errDone, resDone, ctxDone := p.out.done, p.err.done, p.res.done, ctx.Done()
	// Finished when both output pipes are at EOF and either the result frame
	// is complete, or the template reported the job over and the result
	// pipe is at EOF too (all its writers are dead by then).
	for !(p.out.eof() && p.err.eof() && (p.res.complete() || done != nil && p.res.finished())) {
		select {
		case <-outDone:
			outDone = nil // a closed channel is always ready: stop selecting it
		case <-errDone:
			errDone = nil
		case <-resDone:
			resDone = nil
		case f, ok := <-frames:
			if !ok || f.err != nil {
				return Outcome{}, w.frameErr(f, ok)
			}
			if f.m.Type == "dying" {
				// The template is alive and still killing the job's
				// processes: wait for it, within killTimeout.
				left := min(grace, time.Until(dyingUntil))
				backstop.Reset(left)
				if cancelled != nil {
					cancelled = time.After(min(cancelGrace, left))
				}
				continue
			}
			if f.m.Type != "done" {
				return Outcome{}, fmt.Errorf("%w: got %q frame, want done (%s)", ErrProtocol, f.m.Type, f.m.Error)
			}
			done, frames = f.m, nil // the next frame ("ready") is WaitReady's
			drain = time.After(drainTimeout)
		case <-ctxDone:
			// The AfterFunc tells the template; give it a moment to confirm.
			ctxDone, cancelled = nil, time.After(cancelGrace)
		case <-cancelled:
			return Outcome{}, context.Cause(ctx)
		case <-drain:
			return Outcome{}, fmt.Errorf("%w: the job's pipes stayed open after the template reported it done", ErrProtocol)
		case <-backstop.C:
			return Outcome{}, ErrUnresponsive
		}
	}
	if done == nil {
		// Answered from the result and EOF on both pipes, before the
		// template has finished: WaitReady reads its "done". Whatever the
		// job still runs (it may have written its result early on purpose,
		// to keep its worker busy) is killed now, not at its time limit.
		w.pendingDone = true
		done = &meta{Type: "done", Status: "result"}
		w.send(map[string]string{"type": "cancel"})
	}
	if done.Status == "cancelled" {
		return Outcome{}, &CancelledError{Err: context.Cause(ctx)}
	}
	o := outcome(done, p.result(), job, w.cfg.Limits)
	o.Stdout, o.StdoutTruncated, o.StdoutBytes = p.out.text(), p.out.truncated(), p.out.total
	o.Stderr = p.err.text()
	if o.Elapsed == 0 {
		o.Elapsed = time.Since(p.started)
	}
	// A job whose process the kernel killed for memory hit its limit, even if
	// the process main() ran in survived to return a value.
	if w.proc.OOMKills() > ooms {
		o.Kind, o.Result = KindMemory, nil
		o.Error = fmt.Sprintf("Memory limit exceeded: the job's processes together may use at most %d MiB; the kernel killed one that went over",
			w.cfg.Limits.MemoryBytes>>20)
	}
	if job.V1 != nil {
		o.StderrTruncated = p.err.truncated()
		v1Outcome(&o, o.v1raw, w.cfg.Limits)
	}
	return o, nil
}

// CancelledError is Run's error when the request's context ended and the
// template killed the job on request: the worker is intact.
type CancelledError struct{ Err error }

func (e *CancelledError) Error() string { return "job cancelled: " + e.Err.Error() }
func (e *CancelledError) Unwrap() error { return e.Err }

// Reusable reports whether a worker whose Run returned err may be recycled
// (after WaitReady) rather than killed.
func Reusable(err error) bool {
	var c *CancelledError
	return errors.As(err, &c)
}

// deliver sends the job frame on the control pipe and the job's descriptors
// on the job socket. Neither blocks past its deadline.
func (w *Worker) deliver(job Job, p *jobPipes) error {
	warm := w.cfg.usesPreload(job.Script)
	if err := w.send(map[string]any{"type": "job", "timeout_ms": job.Timeout.Milliseconds(), "warm": warm}); err != nil {
		return w.deadErr(fmt.Errorf("sending job: %w", err))
	}
	rights := unix.UnixRights(int(p.job.Fd()), int(p.out.w.Fd()), int(p.err.w.Fd()), int(p.res.w.Fd()))
	raw, err := w.jobs.SyscallConn()
	if err != nil {
		return err
	}
	var sendErr error
	err = raw.Write(func(fd uintptr) bool {
		sendErr = unix.Sendmsg(int(fd), []byte{'J'}, rights, nil, unix.MSG_DONTWAIT)
		return !errors.Is(sendErr, unix.EAGAIN)
	})
	if err == nil {
		err = sendErr
	}
	if err != nil {
		return w.deadErr(fmt.Errorf("passing the job's descriptors: %w", err))
	}
	// The job process and the template now hold the write ends: EOF on our
	// read ends means every process that could write is gone.
	p.closeWriteEnds()
	return nil
}

// send writes one frame to the template, with a deadline: a template that
// stopped reading cannot block the caller.
func (w *Worker) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	w.in.SetWriteDeadline(time.Now().Add(ackTimeout))
	return WriteFrame(w.in, b)
}

func (w *Worker) awaitAck() error {
	err := w.awaitFrame(context.Background(), "started", ackTimeout)
	if errors.Is(err, ErrUnresponsive) {
		return fmt.Errorf("%w: no acknowledgement within %s", ErrUnresponsive, ackTimeout)
	}
	return err
}

// awaitFrame reads control frames until one of type want arrives, skipping
// the "done" of a job that Run answered early. A "fatal" frame, any other
// frame, the end of the stream, ctx or the timeout end the wait with an
// error (ErrUnresponsive for the timeout).
func (w *Worker) awaitFrame(ctx context.Context, want string, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case f, ok := <-w.frames:
			if !ok || f.err != nil {
				return w.frameErr(f, ok)
			}
			switch f.m.Type {
			case want:
				if f.m.Python != nil {
					w.python = f.m.Python
				}
				if f.m.Forker == "template" {
					w.noZygote = cmp.Or(f.m.NoZygote, "no reason given")
				}
				return nil
			case "done":
				if w.pendingDone { // the previous job's
					w.pendingDone = false
					continue
				}
			case "dying":
				if w.pendingDone { // the previous job's processes, being killed
					continue
				}
			case "fatal":
				return fmt.Errorf("%w: %s", ErrProtocol, f.m.Error)
			}
			return fmt.Errorf("%w: got %q frame, want %s", ErrProtocol, f.m.Type, want)
		case <-timer.C:
			return ErrUnresponsive
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// jobPipes are one job's channels to its job process: a sealed memfd with
// the job, and pipes for stdout, stderr and the result frame whose read ends
// only this process holds.
type jobPipes struct {
	job      *os.File
	out, err *capture
	res      *resultReader
	nonce    string
	started  time.Time
}

func newJobPipes(job Job, lim Limits) (_ *jobPipes, retErr error) {
	var b [16]byte
	rand.Read(b[:])
	p := &jobPipes{nonce: hex.EncodeToString(b[:]), started: time.Now()}
	defer func() {
		if retErr != nil {
			p.close()
		}
	}()
	msg := map[string]any{"script": job.Script, "nonce": p.nonce, "timeout_ms": job.Timeout.Milliseconds()}
	outMax, resMax := lim.StdoutBytes, headerSize+len(p.nonce)+int(lim.ResultBytes)+4096
	if v := job.V1; v != nil {
		m := map[string]any{
			"files":        v.Files,
			"memory_bytes": v.MemoryBytes,
			"limits":       map[string]any{"files": lim.OutputFiles, "files_bytes": lim.OutputFilesBytes},
		}
		if v.HasInput {
			m["input"] = v.Input
		}
		msg["v1"] = m
		if v.OutputBytes > 0 {
			outMax = min(outMax, v.OutputBytes)
		}
		// Files and images out travel base64 in the result frame, beside an
		// error with a bounded traceback.
		resMax += int(lim.OutputFilesBytes)/3*4 + 4352*lim.OutputFiles + 256<<10 // paths up to PATH_MAX
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	if p.job, err = sealedFile("job", body); err != nil {
		return nil, err
	}
	if p.out, err = newCapture(outMax); err != nil {
		return nil, err
	}
	if p.err, err = newCapture(outMax); err != nil {
		return nil, err
	}
	if p.res, err = newResultReader(resMax); err != nil {
		return nil, err
	}
	if job.Output != nil {
		p.out.onChunk = func(b []byte) { job.Output("stdout", b) }
		p.err.onChunk = func(b []byte) { job.Output("stderr", b) }
	}
	go p.out.run()
	go p.err.run()
	go p.res.run()
	return p, nil
}

func (p *jobPipes) closeWriteEnds() {
	p.job.Close()
	p.out.w.Close()
	p.err.w.Close()
	p.res.w.Close()
}

// close releases every descriptor and waits for the readers to stop.
func (p *jobPipes) close() {
	for _, f := range []*os.File{p.job} {
		if f != nil {
			f.Close()
		}
	}
	for _, c := range []*capture{p.out, p.err} {
		if c != nil {
			c.w.Close()
			c.r.SetReadDeadline(time.Now())
			<-c.done
			c.r.Close()
		}
	}
	if p.res != nil {
		p.res.w.Close()
		p.res.r.SetReadDeadline(time.Now())
		<-p.res.done
		p.res.r.Close()
	}
}

// result returns the result frame's payload without the nonce, nil when
// there is none, or a marker the outcome reports as corruption.
func (p *jobPipes) result() *resultBody {
	return p.res.body(p.nonce)
}

// capture reads one of the job's output pipes to EOF, keeping the first max
// bytes and counting the rest.
type capture struct {
	r, w  *os.File
	max   int64
	buf   []byte
	total int64
	done  chan struct{} // closed at EOF (or error); buf and total are final
	// onChunk, when set, sees each kept chunk as it is read (Job.Output).
	onChunk func([]byte)
}

func newCapture(max int64) (*capture, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	return &capture{r: r, w: w, max: max, done: make(chan struct{})}, nil
}

func (c *capture) run() {
	defer close(c.done)
	chunk := make([]byte, 64<<10)
	for {
		n, err := c.r.Read(chunk)
		c.total += int64(n)
		if keep := min(int64(n), c.max-int64(len(c.buf))); keep > 0 {
			c.buf = append(c.buf, chunk[:keep]...)
			if c.onChunk != nil {
				c.onChunk(chunk[:keep])
			}
		}
		if err != nil {
			return
		}
	}
}

func (c *capture) eof() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *capture) text() string    { return strings.ToValidUTF8(string(c.buf), "\uFFFD") }
func (c *capture) truncated() bool { return c.total > c.max }

// resultReader reads the job's result frame: header, nonce, JSON. It stops
// at the end of the frame (processes the job forked may hold the pipe open
// after it) or at max bytes.
type resultReader struct {
	r, w *os.File
	max  int
	buf  []byte
	over bool          // more than max bytes arrived
	done chan struct{} // closed when the frame is complete, at EOF or at max
}

func newResultReader(max int) (*resultReader, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	return &resultReader{r: r, w: w, max: max, done: make(chan struct{})}, nil
}

func (rr *resultReader) run() {
	defer close(rr.done)
	chunk := make([]byte, 64<<10)
	for !rr.frameComplete() {
		n, err := rr.r.Read(chunk)
		if !rr.over {
			rr.buf = append(rr.buf, chunk[:n]...)
		}
		if len(rr.buf) > rr.max {
			// Keep reading and dropping, so that the writer is not left
			// blocked on a full pipe until its time limit.
			rr.over, rr.buf = true, nil
		}
		if err != nil {
			return
		}
	}
}

func (rr *resultReader) frameComplete() bool {
	if rr.over || len(rr.buf) < headerSize {
		return false
	}
	n := int(uint32(rr.buf[0])<<24 | uint32(rr.buf[1])<<16 | uint32(rr.buf[2])<<8 | uint32(rr.buf[3]))
	return len(rr.buf) >= headerSize+n
}

// finished reports whether the reader has stopped: frame complete, EOF or
// too much.
func (rr *resultReader) finished() bool {
	select {
	case <-rr.done:
		return true
	default:
		return false
	}
}

// complete reports whether a whole frame has arrived.
func (rr *resultReader) complete() bool {
	select {
	case <-rr.done:
		return rr.frameComplete()
	default:
		return false
	}
}

// resultBody is what the result pipe held: nothing, a frame with the right
// nonce (Payload), something else (Corrupt), or too much (TooLarge).
type resultBody struct {
	Payload  []byte
	Corrupt  bool
	TooLarge bool
}

func (rr *resultReader) body(nonce string) *resultBody {
	select {
	case <-rr.done:
	default:
		return &resultBody{} // the reader is still waiting: nothing complete arrived
	}
	switch {
	case rr.over:
		return &resultBody{TooLarge: true}
	case len(rr.buf) == 0:
		return &resultBody{}
	case !rr.frameComplete():
		return &resultBody{Corrupt: true}
	}
	n := int(uint32(rr.buf[0])<<24 | uint32(rr.buf[1])<<16 | uint32(rr.buf[2])<<8 | uint32(rr.buf[3]))
	payload := rr.buf[headerSize : headerSize+n]
	if len(rr.buf) != headerSize+n || !strings.HasPrefix(string(payload), nonce) {
		return &resultBody{Corrupt: true}
	}
	return &resultBody{Payload: payload[len(nonce):]}
}

// sealedFile returns an in-memory file holding data, sealed against any
// change, positioned at offset 0.
func sealedFile(name string, data []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	_, err = unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("sealing %s: %w", name, err)
	}
	return f, nil
}
