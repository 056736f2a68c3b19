"""python-executor worker: a template interpreter that never runs user code.

The Go server starts this file inside the sandbox and talks to it over two
pipes, fd 3 (server -> worker) and fd 4 (worker -> server). Every message is a
frame: a 4-byte big-endian length, then that many bytes of UTF-8 JSON.

Lifecycle:
  1. The server sends a config frame (limits, seccomp program, warm flag).
  2. The template imports numpy and pandas (warm mode) and forks two job
     children that block until they get a job: one that first warms its
     inherited pages with a seed-like numpy/pandas script, one plain. Then it
     sends {"type": "ready"}. (Cold mode: no imports, one plain child, and
     the template exits after one job.)
  3. For each job frame {"script", "timeout_ms"} the template hands the script
     to a waiting child (the warmed one when the script mentions numpy or
     pandas), which applies rlimits and seccomp, runs the script,
     and writes one result frame on its own pipe before exiting. The template
     captures the child's fd 1 (capped), enforces the wall-clock limit, kills
     every process the job left behind, wipes the scratch directories and
     answers with a "done" frame followed by the child's result frame (empty if
     there is none).
  4. The template forks a child to replace the one used and sends
     {"type": "ready"} again.

If anything about the template's own state is in doubt it sends
{"type": "fatal"} and exits; the server then replaces the whole worker. The
template exits when fd 3 reaches EOF, so it never outlives the server.
"""

import base64
import ctypes
import errno
import gc
import json
import os
import selectors
import shutil
import signal
import struct
import sys
import time

CTL_IN, CTL_OUT = 3, 4
HEADER = struct.Struct(">I")
MAX_FRAME = 64 << 20

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
SECCOMP_MODE_FILTER = 2

libc = ctypes.CDLL(None, use_errno=True)

# A job may monkeypatch builtins, json and os in its own process. Bind what the
# job process needs after main() returns to module globals now, so that such
# patches cannot garble the result of the very job that made them.
from builtins import (  # noqa: E402,A004
    BaseException, Exception, MemoryError, OSError, SystemExit, TypeError, ValueError,
    callable, dict, float, getattr, hasattr, int, isinstance, len, list, str, type,
)
_dumps = json.dumps
_write, _exit, _getpid = os.write, os._exit, os.getpid


class ProtocolError(Exception):
    pass


def read_exact(fd, n):
    chunks = []
    while n:
        b = os.read(fd, min(n, 1 << 20))
        if not b:
            raise EOFError
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def read_frame(fd):
    (n,) = HEADER.unpack(read_exact(fd, HEADER.size))
    if n > MAX_FRAME:
        raise ProtocolError("frame of %d bytes exceeds %d" % (n, MAX_FRAME))
    return read_exact(fd, n)


def write_frame(fd, payload):
    data = HEADER.pack(len(payload)) + payload
    view = memoryview(data)
    while view:
        view = view[_write(fd, view):]


def send(msg):
    write_frame(CTL_OUT, json.dumps(msg, ensure_ascii=False).encode())


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    if libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                  ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "prctl(%d): %s" % (option, os.strerror(err)))


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def install_seccomp(program):
    """Installs a classic BPF program (8-byte sock_filter records)."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    if not program:
        return
    fprog = SockFprog(len(program) // 8, program)
    if libc.prctl(PR_SET_SECCOMP, ctypes.c_ulong(SECCOMP_MODE_FILTER),
                  ctypes.byref(fprog), ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "seccomp: %s" % os.strerror(err))


# ---------------------------------------------------------------- job child


def to_jsonable(o):
    """json.dumps default hook: numpy and pandas values become plain JSON."""
    mod = type(o).__module__
    if mod.startswith("numpy"):
        import numpy as np
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
    if mod.startswith("pandas"):
        import pandas as pd
        if isinstance(o, pd.DataFrame):
            return o.to_dict(orient="records")
        if isinstance(o, (pd.Series, pd.Index)):
            return o.tolist()
        if isinstance(o, pd.Timestamp):
            return o.isoformat()
        if o is pd.NaT or o is pd.NA:
            return None
    if isinstance(o, (set, frozenset)):
        return list(o)
    if hasattr(o, "isoformat"):  # datetime, date, time
        return o.isoformat()
    raise TypeError("Object of type %s is not JSON serializable" % type(o).__name__)


def finite(o):
    """Replaces NaN and +-Infinity with None, recursively."""
    if isinstance(o, float):
        return o if o == o and o not in (float("inf"), float("-inf")) else None
    if isinstance(o, dict):
        return {k: finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [finite(v) for v in o]
    j = to_jsonable(o) if not isinstance(o, (str, int, bool, type(None))) else o
    return o if j is o else finite(j)


def encode_result(value):
    try:
        return _dumps({"result": value}, default=to_jsonable,
                          allow_nan=False, ensure_ascii=False)
    except ValueError as e:
        if "Out of range float" not in str(e):
            raise
        return _dumps({"result": finite(value)}, default=to_jsonable,
                          allow_nan=False, ensure_ascii=False)


def describe(exc, cfg):
    if isinstance(exc, MemoryError):
        return "MemoryError: memory limit exceeded (a job may allocate %d MiB)" % (
            cfg["memory_bytes"] >> 20)
    if isinstance(exc, SystemExit):
        return "SystemExit: script called sys.exit(%s)" % (exc.code,)
    if isinstance(exc, BlockingIOError) and exc.errno == errno.EAGAIN:
        return "%s: %s (a job may run at most %d processes and threads)" % (
            type(exc).__name__, exc, cfg["nproc"])
    if isinstance(exc, RuntimeError) and "can't start new thread" in str(exc):
        return "RuntimeError: can't start new thread (a job may run at most %d processes and threads)" % cfg["nproc"]
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        return "OSError: file too large (a job may write files of at most %d MiB)" % (cfg["fsize_bytes"] >> 20)
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "OSError: no space left in the job's scratch space (%d MiB)" % (cfg["fsize_bytes"] >> 20)
    if isinstance(exc, OSError) and exc.errno == errno.EMFILE:
        return "OSError: too many open files (a job may open at most %d)" % cfg["nofile"]
    msg = str(exc)
    name = type(exc).__name__
    return "%s: %s" % (name, msg) if msg else name


def run_script(script, cfg):
    import types
    try:
        code = compile(script, "<script>", "exec")
    except (SyntaxError, ValueError) as e:
        if isinstance(e, SyntaxError):
            where = " (line %s)" % e.lineno if e.lineno else ""
            return {"error": "Syntax error in script: %s%s" % (e.msg, where), "kind": "syntax"}
        return {"error": "Syntax error in script: %s" % e, "kind": "syntax"}
    mod = types.ModuleType("__script__")
    sys.modules["__script__"] = mod
    try:
        exec(code, mod.__dict__)
        main = mod.__dict__.get("main")
        if not callable(main):
            return {"error": "Script must contain a main() function", "kind": "no_main"}
        value = main()
        sys.stdout.flush()
        out = encode_result(value)
    except BaseException as e:  # noqa: B902 - SystemExit and friends are job errors too
        try:
            sys.stdout.flush()
        except BaseException:
            pass
        kind = "memory" if isinstance(e, MemoryError) else "exception"
        return {"error": describe(e, cfg), "kind": kind}
    if len(out) > cfg["result_limit"]:
        return {"error": "Result too large: %d bytes exceeds the result limit of %d bytes" % (
            len(out), cfg["result_limit"]), "kind": "result_limit"}
    return out


WARM_SCRIPT = """
import math
import numpy as np
import pandas as pd

def main():
    print("warming")
    arr = np.array([1, 2, 3, 4, 5])
    df = pd.DataFrame({"name": ["a", "b", "c"], "age": [25, 30, 35]})
    data = pd.DataFrame({"x": np.arange(1, 11), "y": np.arange(1, 11) ** 2})
    return {"sum": int(np.sum(arr)), "mean": float(np.mean(arr)), "rows": len(df),
            "columns": list(df.columns), "mean_age": float(df["age"].mean()),
            "corr": float(data["x"].corr(data["y"])), "sqrt": math.sqrt(2)}
"""


def warm_child():
    """Runs a script like the seed's through the job path, so that the pages a
    typical job touches are already faulted in when the job arrives.

    Measured on a 2-vCPU VM: this costs about 4 ms per job, in the
    background, and cuts the seed's pandas case from 3.4 ms to 0.5 ms; a
    heavier warm-up (describe, groupby) cost 10 ms and bought nothing more.
    """
    import io
    saved = sys.stdout
    sys.stdout = io.StringIO()
    try:
        run_script(WARM_SCRIPT, {"memory_bytes": 0, "nproc": 0, "fsize_bytes": 0, "nofile": 0,
                                 "result_limit": 1 << 20})
    except Exception:
        pass
    finally:
        sys.stdout = saved
        sys.modules.pop("__script__", None)


def set_limits(cfg, timeout_s):
    import resource
    lim = [
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NOFILE, cfg["nofile"]),
        (resource.RLIMIT_FSIZE, cfg["fsize_bytes"]),
        (resource.RLIMIT_CPU, int(timeout_s) + 2),
        (resource.RLIMIT_NPROC, cfg["nproc"]),
    ]
    if cfg["memory_bytes"] > 0:
        with open("/proc/self/statm") as f:
            vsize = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        lim.append((resource.RLIMIT_AS, vsize + cfg["memory_bytes"]))
    for what, n in lim:
        resource.setrlimit(what, (n, n))


def child_main(cfg, warm, job_r, res_w, out_w):
    """Runs in the forked child. Never returns."""
    code = 0
    me = os.getpid()
    nonce = b""
    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        os.setsid()  # its own process group: kill(0) cannot reach the template
        try:  # over a memory cgroup's limit, the kernel kills the job, not the template
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("1000")
        except OSError:
            pass
        os.close(CTL_IN)
        os.close(CTL_OUT)
        if warm:
            warm_child()
        os.write(res_w, b"W")  # warmed: the template may announce it ready
        try:
            job = json.loads(read_frame(job_r))
        except EOFError:
            os._exit(0)
        nonce = job.pop("nonce").encode()
        os.chdir(cfg["scratch"][0])
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(devnull, 2)
        keep = {0, 1, 2, res_w}
        for fd in list(map(int, os.listdir("/proc/self/fd"))):
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        import io
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8",
                                      errors="backslashreplace", write_through=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                      errors="backslashreplace", write_through=True)
        set_limits(cfg, job["timeout_ms"] / 1000.0)
        install_seccomp(cfg["seccomp"])
        out = run_script(job["script"], cfg)
        if _getpid() != me:
            _exit(0)  # a process the script forked: only the job process answers
        if isinstance(out, dict):
            out = _dumps(out, ensure_ascii=False)
        try:
            data = out.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: escape them, JSON allows that
            data = _dumps(json.loads(out), ensure_ascii=True).encode()
        write_frame(res_w, nonce + data)
    except BaseException as e:  # the child must never return into the template's loop
        code = 120
        try:
            if _getpid() != me:
                _exit(0)
            write_frame(res_w, nonce + _dumps({"error": "worker: %s" % describe(e, cfg),
                                                   "kind": "internal"}).encode())
        except BaseException:
            pass
    _exit(code)


# ---------------------------------------------------------------- template


class Child:
    def __init__(self, pid, job_w, res_r, out_r):
        self.pid, self.job_w, self.res_r, self.out_r = pid, job_w, res_r, out_r
        try:
            self.pidfd = os.pidfd_open(pid)
        except OSError:  # old kernels and gVisor: poll with waitpid instead
            self.pidfd = None
        self.reaped = False

    def close(self):
        for fd in (self.job_w, self.res_r, self.out_r, self.pidfd):
            if fd is None:
                continue
            try:
                os.close(fd)
            except OSError:
                pass


def fork_child(cfg, warm):
    job_r, job_w = os.pipe()
    res_r, res_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(job_w)
        os.close(res_r)
        os.close(out_r)
        child_main(cfg, warm, job_r, res_w, out_w)
    for fd in (job_r, res_w, out_w):
        os.close(fd)
    child = Child(pid, job_w, res_r, out_r)
    if os.read(res_r, 1) != b"W":
        raise RuntimeError("job process died while warming up")
    return child


def descendants(job_sid, keep):
    """Pids of every living process below this one (it is a subreaper) but
    the waiting children in keep, and, where subreapers are not supported
    (old gVisor), of the job's session."""
    me = os.getpid()
    parent, victims = {}, set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        pid = int(name)
        parent[pid] = int(fields[1])
        if job_sid is not None and int(fields[3]) == job_sid and pid != me:
            victims.add(pid)
    frontier = {me}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier and p not in victims and p not in keep}
        victims |= frontier
    return victims


def reap():
    """Reaps every child that has exited."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


SUBREAPER = True  # False where PR_SET_CHILD_SUBREAPER is refused


def kill_all(job_sid, keep):
    """SIGKILLs every process the job left behind and reaps them, sparing the
    waiting children in keep. The job process made its own session
    (job_sid): without a subreaper, orphans are found by that session
    instead of by ancestry."""
    scan_session = job_sid if not SUBREAPER else None
    for _ in range(1000):
        reap()
        # Zombies count too: a killed grandchild stays in /proc until the
        # subreaper (this process) inherits and reaps it.
        victims = descendants(scan_session, keep)
        if not victims:
            return
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.001)
    raise RuntimeError("could not kill the job's processes")


def wipe(dirs):
    for d in dirs:
        for name in os.listdir(d):
            p = os.path.join(d, name)
            if os.path.isdir(p) and not os.path.islink(p):
                for root, subdirs, _ in os.walk(p):
                    for s in subdirs:
                        try:
                            os.chmod(os.path.join(root, s), 0o700)
                        except OSError:
                            pass
                os.chmod(p, 0o700)
                shutil.rmtree(p)
            else:
                os.unlink(p)


def run_job(child, job, cfg, keep):
    """Runs one job on the waiting child; returns (meta, result_payload).

    It returns as soon as the child's result frame is complete: the child
    writes it after flushing stdout, so everything it printed is already in
    the stdout pipe. Killing and reaping happen afterwards, in cleanup().
    """
    timeout = job["timeout_ms"] / 1000.0
    start = time.monotonic()
    try:
        write_frame(child.job_w, json.dumps(job).encode())
    except BrokenPipeError:
        pass  # the child died while waiting; reported below as its exit status
    out = Capture(cfg["stdout_limit"])
    res = bytearray()
    max_res = HEADER.size + cfg["result_limit"] + 4096
    sel = selectors.DefaultSelector()
    for fd in (child.out_r, child.res_r, child.pidfd):
        if fd is not None:
            sel.register(fd, selectors.EVENT_READ)
    meta = {"type": "done"}
    deadline = start + timeout

    def exited(status):
        child.reaped = True
        if os.WIFEXITED(status):
            meta.update(status="exited", exit_code=os.WEXITSTATUS(status))
        else:
            meta.update(status="signaled", signal=os.WTERMSIG(status))

    while "status" not in meta:
        left = deadline - time.monotonic()
        if left <= 0:
            meta["status"] = "timeout"
            break
        if child.pidfd is None:
            pid, status = os.waitpid(child.pid, os.WNOHANG)
            if pid:
                exited(status)
                break
            left = min(left, 0.005)
        for key, _ in sel.select(left):
            fd = key.fd
            if fd == child.pidfd:
                os.kill(child.pid, signal.SIGKILL)  # no-op unless only the leader exited
                exited(os.waitpid(child.pid, 0)[1])
                break
            b = os.read(fd, 1 << 16)
            if not b:
                sel.unregister(fd)
            elif fd == child.out_r:
                out.add(b)
            else:
                res += b
                if len(res) > max_res:
                    meta["status"] = "result_too_large"
                elif len(res) >= HEADER.size:
                    (n,) = HEADER.unpack(res[:HEADER.size])
                    if len(res) >= HEADER.size + n:
                        meta["status"] = "result"
    sel.close()
    meta["elapsed_ms"] = int((time.monotonic() - start) * 1000)
    if meta["status"] != "result":
        # Without a result, stop every writer before the final drain.
        cleanup(child, cfg, keep, wipe_scratch=False)
    out.drain(child.out_r)
    if meta["status"] in ("exited", "signaled"):
        res += drain(child.res_r, max_res - len(res))
    body = b""
    if meta["status"] in ("result", "exited", "signaled") and res:
        body = bytes(res[HEADER.size:])
        nonce = job["nonce"].encode()
        if (len(res) < HEADER.size or HEADER.unpack(res[:HEADER.size])[0] != len(body)
                or not body.startswith(nonce)):
            body, meta["result_corrupt"] = b"", True
        else:
            body = body[len(nonce):]
    meta["stdout"] = out.text()
    if out.total > out.limit:
        meta["stdout_truncated"] = True
        meta["stdout_bytes"] = out.total
    return meta, body


def available(fd):
    """Yields what a pipe holds now, in chunks, without blocking."""
    os.set_blocking(fd, False)
    while True:
        try:
            b = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        if not b:
            return
        yield b


def drain(fd, limit):
    """Reads what a pipe holds now, up to about limit bytes."""
    buf = bytearray()
    for b in available(fd):
        buf += b
        if len(buf) > limit:
            break
    return buf


class Capture:
    """Keeps the first limit bytes of a stream and counts the rest."""

    def __init__(self, limit):
        self.limit, self.buf, self.total = limit, bytearray(), 0

    def add(self, b):
        self.total += len(b)
        if len(self.buf) < self.limit:
            self.buf += b[:self.limit - len(self.buf)]

    def drain(self, fd):
        for b in available(fd):
            self.add(b)

    def text(self):
        return self.buf.decode("utf-8", "replace")


def cleanup(child, cfg, keep=(), wipe_scratch=True):
    """Kills and reaps every process of the job, sparing the waiting children
    whose pids are in keep; wipes the scratch directories."""
    if not child.reaped:
        try:
            os.kill(child.pid, signal.SIGKILL)
            os.waitpid(child.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass  # a waiting child that died and was reaped already
        child.reaped = True
    kill_all(child.pid, set(keep))
    if wipe_scratch:
        wipe(cfg["scratch"])


def wants_warm(script):
    """Whether a script should run in a warmed child. A warm-up costs about
    5 ms of CPU per job, which scripts that touch neither numpy nor pandas do
    not need; a script that does without this hint still runs correctly, it
    only pays the page faults itself."""
    return "numpy" in script or "pandas" in script


def intact(child):
    """Whether a waiting child is still asleep on its job pipe. The job that
    ran beside it (same uid) could have stopped or killed it."""
    try:
        with open("/proc/%d/stat" % child.pid, "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:].split()[0] == b"S"


def serve(cfg):
    # Two waiting children in warm mode: one warmed for numpy and pandas
    # scripts, one plain for the rest.
    kinds = (True, False) if cfg["warm"] else (False,)
    children = {warm: fork_child(cfg, warm) for warm in kinds}
    send({"type": "ready"})
    while True:
        try:
            job = json.loads(read_frame(CTL_IN))
        except EOFError:
            return
        warm = cfg["warm"] and wants_warm(job["script"])
        child = children.pop(warm)
        keep = [c.pid for c in children.values()]
        if not intact(child):
            cleanup(child, cfg, keep)
            child.close()
            child = fork_child(cfg, warm)
        # Only the job process learns the nonce, after fork: a script that
        # writes blind frames to its fds cannot pass them off as its result.
        job["nonce"] = os.urandom(16).hex()
        try:
            meta, body = run_job(child, job, cfg, keep)
            send(meta)
            write_frame(CTL_OUT, body)
        finally:
            cleanup(child, cfg, keep)
            child.close()
        if cfg.get("one_shot"):
            return
        children[warm] = fork_child(cfg, warm)
        send({"type": "ready"})


def self_test(cfg):
    """Fails closed: the seccomp program must install in a child before any job runs."""
    pid = os.fork()
    if pid == 0:
        try:
            install_seccomp(cfg["seccomp"])
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise RuntimeError("cannot install the seccomp filter in a job process")


def main():
    os.umask(0o077)
    try:
        os.close(5)  # the program's own source, already read
    except OSError:
        pass
    try:
        cfg = json.loads(read_frame(CTL_IN))
    except EOFError:
        return
    try:
        cfg["seccomp"] = base64.b64decode(cfg.get("seccomp") or "")
        prctl(PR_SET_DUMPABLE, 0)
        try:
            prctl(PR_SET_CHILD_SUBREAPER, 1)
        except OSError:
            global SUBREAPER
            SUBREAPER = False
            print("worker: no PR_SET_CHILD_SUBREAPER here: finding a job's orphans by session",
                  file=sys.stderr)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self_test(cfg)
        if cfg["warm"]:
            import numpy  # noqa: F401
            import pandas  # noqa: F401
        gc.collect()
        gc.freeze()
    except Exception as e:
        send({"type": "fatal", "error": "worker start: %s: %s" % (type(e).__name__, e)})
        sys.exit(1)
    try:
        serve(cfg)
    except Exception as e:
        try:
            send({"type": "fatal", "error": "worker: %s: %s" % (type(e).__name__, e)})
        except Exception:
            pass
        sys.exit(1)


if __name__ == "__main__":
    main()
