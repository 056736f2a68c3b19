"""python-executor worker: a template interpreter that never runs user code
and never holds a job's data.

The Go server starts this file inside the sandbox and talks to it over two
pipes, fd 3 (server -> worker) and fd 4 (worker -> server), and one socket,
fd 6, on which the server passes each job's file descriptors. Every message
on the pipes is a frame: a 4-byte big-endian length, then that many bytes of
UTF-8 JSON.

Lifecycle:
  1. The server sends a config frame (limits, seccomp program, Landlock
     rules, warm flag).
  2. The template imports the modules the config's "preload" names (warm
     mode; default numpy and pandas), runs a seed-like warm-up script using
     them once, and forks two job children that block until they get a job:
     one for scripts that use the preload, which first copies the pages such
     a script writes (see WarmPages), one plain. Then it sends
     {"type": "ready"}. After the first warm child (the probe), the
     template forks a zygote, which from then on forks every child in its
     place, that first one's replacement included (see Zygote). (Cold mode: no imports, one plain child, and the
     template exits after one job. Probe mode: one {"type": "ready",
     "python": {...}} with the interpreter's and the packages' versions,
     and exit.)
  3. For each job the server sends a frame {"timeout_ms", "warm"} and, on
     fd 6, four descriptors: a sealed memfd holding the job (script, nonce;
     for POST /v1/execute also "v1": input, files, lower limits),
     and the write ends of the job's stdout, stderr and result pipes, whose
     read ends only the server holds. The template answers
     {"type": "started"} (from here on the job may have run: not safe to
     retry), hands the descriptors to the waiting child without reading
     them, and waits for the child to exit, for the time limit, or for a
     {"type": "cancel"} frame. It kills every process the job left behind,
     answers {"type": "done", "status": ...}, and empties the scratch space.
     The script, what it printed and what it returned never pass through the
     template's memory, so no later child can inherit them.
  4. The template has the zygote fork a child to replace the one used, and
     sends {"type": "ready"} again.

If anything about the template's own state is in doubt it sends
{"type": "fatal"} and exits; the server then replaces the whole worker. The
template exits when fd 3 reaches EOF, so it never outlives the server.
"""

import _thread
import base64
import ctypes
import errno
import gc
import io
import itertools
import json
import os
import resource
import selectors
import signal
import socket
import stat
import struct
import sys
import threading
import time
import traceback

CTL_IN, CTL_OUT, JOB_FDS = 3, 4, 6
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


def protect_pid(syscalls, pid):
    """A second seccomp program, beside the server's: the syscalls named
    (by number: kill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo, pidfd_open,
    whose first argument is a pid) fail with EPERM when aimed at pid, whose
    number only this process knows. It reads the argument's low 32 bits, all
    the kernel does. (A syscall of a foreign ABI: the server's program kills
    the process, which wins over whatever this one says.)"""
    ld, jeq, ret = 0x20, 0x15, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_RET|K
    allow, deny = 0x7FFF0000, 0x00050000 | errno.EPERM
    arg0 = 16 if sys.byteorder == "little" else 20  # offsetof(seccomp_data, args[0]), low word
    n = len(syscalls)
    prog = [(ld, 0, 0, 0)]
    for i, nr in enumerate(syscalls):
        prog.append((jeq, n - i, 0, nr))  # to the argument check
    prog += [(ret, 0, 0, allow), (ld, 0, 0, arg0), (jeq, 0, 1, pid), (ret, 0, 0, deny), (ret, 0, 0, allow)]
    return b"".join(struct.pack("=HBBI", *ins) for ins in prog)


# Landlock (kernel >= 5.13): the job process confines itself. Syscall numbers
# are the same on every architecture.
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_RULE_PATH_BENEATH = 1
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_TRUNCATE = 1 << 14
FS_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | (1 << 15)
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1


def landlock_fs_rights(abi):
    """Every filesystem right the kernel's ABI knows: all of them are handled,
    so anything not granted by a rule is denied."""
    bits = 13  # ABI 1: execute .. make_sym
    if abi >= 2:
        bits = 14  # refer
    if abi >= 3:
        bits = 15  # truncate
    if abi >= 5:
        bits = 16  # ioctl_dev
    return (1 << bits) - 1


class RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_call(nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *args)
    if r < 0:
        err = ctypes.get_errno()
        raise OSError(err, "landlock syscall %d: %s" % (nr, os.strerror(err)))
    return r


def install_landlock(rules, abi, writable):
    """Confines this process and everything it starts: it may read and
    execute rules["read"], read and write rules["write"], writable and the
    device files in rules["devices"], and nothing else; no TCP bind or
    connect (ABI 4); no signal to, and no abstract unix socket of, a process
    outside its own domain (ABI 6). Landlock also refuses ptrace-mode access
    (/proc/<pid>/mem, environ) to every process outside the domain. Requires
    no_new_privs. Raises if anything cannot be applied: callers fail closed."""
    if abi <= 0:
        return
    fs = landlock_fs_rights(abi)
    attr = RulesetAttr(fs, 0, 0)
    size = 8
    if abi >= 4:
        attr.net = NET_BIND_TCP | NET_CONNECT_TCP
        size = 16
    if abi >= 6:
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        size = 24
    ruleset = landlock_call(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size),
                            ctypes.c_uint32(0))
    try:
        read = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
        grants = [(p, read) for p in rules.get("read") or ()]
        grants += [(p, fs) for p in list(rules.get("write") or ()) + list(writable)]
        grants += [(p, FS_READ_FILE | FS_WRITE_FILE | FS_TRUNCATE) for p in rules.get("devices") or ()]
        for path, allowed in grants:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # /lib32 on a host without one
            try:
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    allowed &= FS_FILE_RIGHTS
                rule = PathBeneath(allowed & fs, fd)
                landlock_call(SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset),
                              ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH), ctypes.byref(rule), ctypes.c_uint32(0))
            finally:
                os.close(fd)
        landlock_call(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0))
    finally:
        os.close(ruleset)


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


RESULT_WRAP = len('{"result": }')  # encode_result's bytes around the value


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
        # EAGAIN is also a non-blocking call that would block: say which
        # limits answer it, not that one was hit.
        return ("%s: %s (from starting a process or thread: a job may run at most %d processes and threads; "
                "from a timer or a queued signal: at most %d of those)") % (
            type(exc).__name__, exc, cfg["nproc"], at_most(resource.RLIMIT_SIGPENDING, SIGPENDING))
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


def run_script(script, cfg, v1=None):
    """Runs script's top level, then main(), and returns the result frame's
    body: a JSON string {"result": ...} or a dict {"error", "kind"}.

    v1 (POST /v1/execute) is the job's dict, or None for the seed API. With
    it, main(input) gets the job's input when the job has one, and a failure
    also fills v1["error_info"] with the exception's type, message, line and
    a traceback of the script's own frames."""
    import types
    try:
        code = compile(script, "<script>", "exec")
    except (SyntaxError, ValueError) as e:
        if isinstance(e, SyntaxError):
            where = " (line %s)" % e.lineno if e.lineno else ""
            if v1 is not None:
                v1["error_info"] = syntax_info(e)
            return {"error": "Syntax error in script: %s%s" % (e.msg, where), "kind": "syntax"}
        if v1 is not None:
            v1["error_info"] = {"type": "SyntaxError", "message": str(e), "line": None, "traceback": None}
        return {"error": "Syntax error in script: %s" % e, "kind": "syntax"}
    mod = types.ModuleType("__script__")
    sys.modules["__script__"] = mod
    try:
        exec(code, mod.__dict__)
        main = mod.__dict__.get("main")
        if not callable(main):
            return {"error": "Script must contain a main() function", "kind": "no_main"}
        if v1 is None:
            value = main()
        else:
            bad = check_arity(main, "input" in v1)
            if bad is not None:
                line = getattr(getattr(main, "__code__", None), "co_firstlineno", None)
                v1["error_info"] = {"type": "TypeError", "message": bad, "line": line, "traceback": None}
                return {"error": "TypeError: " + bad, "kind": "exception"}
            value = main(v1["input"]) if "input" in v1 else main()
        sys.stdout.flush()
        out = encode_result(value)
    except BaseException as e:  # noqa: B902 - SystemExit and friends are job errors too
        try:
            sys.stdout.flush()
        except BaseException:
            pass
        kind = "memory" if isinstance(e, MemoryError) else "exception"
        msg = describe(e, cfg)
        if v1 is not None:
            v1["error_info"] = exception_info(e, msg, script)
        return {"error": msg, "kind": kind}
    # The value's size, as the server measures it: its UTF-8 bytes, without
    # the {"result": } around it. (Characters are never more than bytes;
    # the server checks the bytes again.)
    if len(out) - RESULT_WRAP > cfg["result_limit"]:
        return {"error": "Result too large: %d bytes exceeds the result limit of %d bytes" % (
            len(out.encode("utf-8", "surrogatepass")) - RESULT_WRAP, cfg["result_limit"]), "kind": "result_limit"}
    return out


def check_arity(main, has_input):
    """None when main can be called as the request asks (main(input) when
    it has an input, main() when not), else why not."""
    import inspect
    try:
        params = list(inspect.signature(main).parameters.values())
    except (TypeError, ValueError):
        return None  # a builtin or the like: let the call itself fail
    P = inspect.Parameter
    positional = [p for p in params if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is P.empty]
    varargs = any(p.kind == P.VAR_POSITIONAL for p in params)
    kwonly = [p.name for p in params if p.kind == P.KEYWORD_ONLY and p.default is P.empty]
    if kwonly:
        return "main() has required keyword-only parameters (%s): define it as main() or main(input)" % ", ".join(kwonly)
    if len(required) > 1:
        return "main() takes %d required parameters; it may take at most one, the request's \"input\"" % len(required)
    if has_input and not positional and not varargs:
        return "the request has an \"input\", but main() takes no parameter: define main(input) to receive it"
    if not has_input and required:
        return ("main() requires a parameter (%s), but the request has no \"input\": send one, "
                "or give the parameter a default" % required[0].name)
    return None


def syntax_info(e):
    tb = "".join(traceback.format_exception_only(type(e), e))
    return {"type": type(e).__name__, "message": e.msg, "line": e.lineno, "traceback": tb}


def exception_info(e, described, script):
    """The exception's type, message, the line of the script it was raised
    from (its innermost frame in the script) and a traceback of the script's
    own frames only: none of the service's, nor of the libraries it called."""
    name = type(e).__name__
    msg = described[len(name) + 2:] if described.startswith(name + ": ") else (
        "" if described == name else described)
    lines = script.splitlines()
    try:
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == "<script>"]
    except BaseException:
        frames = []
    last = "%s: %s\n" % (name, msg) if msg else name + "\n"
    msg = msg[:2000]
    if not frames:
        return {"type": name, "message": msg, "line": None, "traceback": last}
    if len(frames) > 40:  # deep recursion: the first and last frames say enough
        frames = frames[:20] + [None] + frames[-20:]
    out = ["Traceback (most recent call last):\n"]
    for f in frames:
        if f is None:
            out.append("  ...\n")
            continue
        out.append('  File "<script>", line %d, in %s\n' % (f.lineno, f.name))
        if f.lineno and 0 < f.lineno <= len(lines) and lines[f.lineno - 1].strip():
            out.append("    %s\n" % lines[f.lineno - 1].strip()[:300])
    out.append(last[:2000])
    return {"type": name, "message": msg, "line": frames[-1].lineno, "traceback": "".join(out)}


def write_input_files(files):
    """Writes the request's files into the job's working directory (the
    server checked the paths; this checks again): relative, no "..", never
    through a symlink, never over another file."""
    for f in files:
        path = f["path"]
        parts = path.split("/")
        if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError("bad input file path %r" % path)
        d = "."
        for p in parts[:-1]:
            d = os.path.join(d, p)
            try:
                os.mkdir(d, 0o700)
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(d).st_mode):
                    raise ValueError("input file path %r runs through a file" % path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            data = base64.b64decode(f["content"])
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)


def collect_outputs(v1, scratch, inputs, limits):
    """What the job leaves for the client, bounded: the matplotlib figures
    still open (PNG), then the files it created or changed in its working
    directory. Counts of what did not fit go in *_omitted."""
    budget = limits["files_bytes"]
    images, files = [], []
    img_omitted = files_omitted = 0
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        try:
            nums = plt.get_fignums()
        except BaseException:
            nums = []
        for num in nums:
            if len(images) >= limits["files"]:
                img_omitted += 1
                continue
            try:
                buf = io.BytesIO()
                plt.figure(num).savefig(buf, format="png")
                data = buf.getvalue()
            except BaseException:
                img_omitted += 1
                continue
            if len(data) > budget:
                img_omitted += 1
                continue
            budget -= len(data)
            images.append({"format": "png", "content": base64.b64encode(data).decode()})
    seen, stack = 0, [""]
    while stack:
        rel = stack.pop()
        try:
            entries = sorted(os.scandir(os.path.join(scratch, rel) if rel else scratch), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            seen += 1
            if seen > 10000:
                files_omitted += 1
                continue
            path = rel + "/" + e.name if rel else e.name
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append(path)
                    continue
                if not e.is_file(follow_symlinks=False):
                    continue
                if tool_cache(path) and path not in inputs:
                    continue
                # A name that is not UTF-8 has no JSON string: two such
                # names would come back as one (outside attack round 21).
                path.encode("utf-8")
                size = e.stat(follow_symlinks=False).st_size
                old = inputs.get(path)
                if old is not None and len(old) == size and read_path(e.path, size + 1) == old:
                    continue  # an input the job did not change
                if len(files) >= limits["files"] or size > budget:
                    files_omitted += 1
                    continue
                data = read_path(e.path, size + 1)
                if len(data) > budget:
                    files_omitted += 1
                    continue
                budget -= len(data)
                files.append({"path": path, "size": len(data), "content": base64.b64encode(data).decode()})
            except (OSError, UnicodeEncodeError):
                files_omitted += 1
    files.sort(key=lambda f: f["path"])
    v1["images"], v1["images_omitted"] = images, img_omitted
    v1["files"], v1["files_omitted"] = files, files_omitted


def tool_cache(path):
    """Whether path is a cache matplotlib (its MPLCONFIGDIR is the scratch
    directory) or fontconfig (under $HOME) wrote for itself: where the
    template did not build them ahead (cold mode), a plot writes them.
    (A file the client sent under such a name is returned like any other.)"""
    if path.startswith(".cache/fontconfig/"):
        return True
    return "/" not in path and path.startswith("fontlist-v") and path.endswith(".json")


def read_path(path, limit):
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        chunks, n = [], 0
        while n < limit:
            b = os.read(fd, min(1 << 20, limit - n))
            if not b:
                break
            chunks.append(b)
            n += len(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


def usage_base():
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def with_v1(out, v1, scratch, inputs, base):
    """Adds what POST /v1/execute returns beyond the seed's result or error
    to the result frame, under the key "v1"."""
    extra = {"error_info": v1.get("error_info")}
    try:
        collect_outputs(extra, scratch, inputs, v1["limits"])
    except BaseException:  # the script may have broken what collecting needs
        extra.update(files=[], images=[], files_omitted=0, images_omitted=0)
    try:
        extra["usage"] = usage(base)
    except BaseException:
        pass
    if isinstance(out, dict):
        out["v1"] = extra
        return out
    return out[:-1] + ', "v1": ' + _dumps(extra, ensure_ascii=False) + "}"


def usage(base):
    """CPU time of the job process and the processes it waited for since the
    job arrived, and the peak resident memory of the largest of them (which
    for the job process includes the pages it shares with the template)."""
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime - base
    return {"cpu_ms": max(0, int(cpu * 1000)),
            "memory_peak_mb": round(max(s.ru_maxrss, c.ru_maxrss) / 1024.0, 1)}


WARM_PARTS = {
    # What a typical job does with each preloadable module: the warm child
    # runs the parts for the modules the template preloaded.
    "numpy": ("import numpy as np",
              'arr = np.array([1, 2, 3, 4, 5])\n'
              '    out.update(sum=int(np.sum(arr)), mean=float(np.mean(arr)))'),
    "pandas": ("import pandas as pd",
               'df = pd.DataFrame({"name": ["a", "b", "c"], "age": [25, 30, 35]})\n'
               '    data = pd.DataFrame({"x": list(range(1, 11)), "y": [i * i for i in range(1, 11)]})\n'
               '    out.update(rows=len(df), columns=list(df.columns), mean_age=float(df["age"].mean()),\n'
               '               corr=float(data["x"].corr(data["y"])))'),
}


def warm_script(preload):
    """A seed-like script using the preloaded modules WARM_PARTS knows,
    or None when it knows none of them."""
    parts = [WARM_PARTS[m] for m in preload if m in WARM_PARTS]
    if not parts:
        return None
    imports = "\n".join(["import math"] + [i for i, _ in parts])
    body = "\n    ".join(b for _, b in parts)
    return ('%s\n\ndef main():\n    print("warming")\n    out = {"sqrt": math.sqrt(2)}\n'
            '    %s\n    return out\n') % (imports, body)


def warm_child(script):
    """Runs a script like the seed's through the job path, so that the pages a
    typical job touches are already faulted in when the job arrives.

    Measured on a 2-vCPU VM: this costs about 4 ms per job, in the
    background, and cuts the seed's pandas case from 3.4 ms to 0.5 ms; a
    heavier warm-up (describe, groupby) cost 10 ms and bought nothing more.
    """
    saved = sys.stdout
    sys.stdout = io.StringIO()
    try:
        run_script(script, {"memory_bytes": 0, "nproc": 0, "fsize_bytes": 0, "nofile": 0,
                                 "result_limit": 1 << 20})
    except Exception:
        pass
    finally:
        sys.stdout = saved
        sys.modules.pop("__script__", None)


SIGPENDING = 256  # signals a job may have queued at once


def at_most(what, n):
    """n, or the hard limit of rlimit what where that is lower."""
    hard = resource.getrlimit(what)[1]
    return n if hard == resource.RLIM_INFINITY else min(n, hard)


def set_limits(cfg, timeout_s, statm):
    """Applies the job's rlimits. statm is an fd on /proc/self/statm, opened
    before Landlock, which may hide /proc."""
    lim = [
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NOFILE, cfg["nofile"]),
        (resource.RLIMIT_FSIZE, cfg["fsize_bytes"]),
        (resource.RLIMIT_CPU, int(timeout_s) + 2),
        (resource.RLIMIT_NPROC, cfg["nproc"]),
        # Queued signals and POSIX timers: where the workers' jobs share a
        # count (a non-root server's uid, mapped into every worker's user
        # namespace), one job could take it all and make every other
        # tenant's timer_create and sigqueue fail. Never raised.
        (resource.RLIMIT_SIGPENDING, at_most(resource.RLIMIT_SIGPENDING, SIGPENDING)),
    ]
    if cfg["memory_bytes"] > 0:
        vsize = int(os.pread(statm, 256, 0).split()[0]) * os.sysconf("SC_PAGE_SIZE")
        lim.append((resource.RLIMIT_AS, vsize + cfg["memory_bytes"]))
    for what, n in lim:
        if what == resource.RLIMIT_SIGPENDING and resource.getrlimit(what) == (n, n):
            continue  # gVisor answers (0, 0), and EPERM to setting it even so
        resource.setrlimit(what, (n, n))


def reseed():
    """A forked child inherits the template's random generators: reseed every
    one a job can reach from the OS's entropy, so that no two jobs draw the
    same numbers and none can predict another's."""
    import random
    random.seed()
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed()


def read_fd(fd):
    """Reads a whole file from offset 0 (the job's memfd)."""
    chunks, off = [], 0
    while True:
        b = os.pread(fd, 1 << 20, off)
        if not b:
            return b"".join(chunks)
        chunks.append(b)
        off += len(b)


def fresh_scratch(path):
    """A new, empty directory for one job: its cwd, HOME and TMPDIR, and with
    Landlock the only place it may write."""
    os.mkdir(path, 0o700)
    os.chdir(path)
    for k in ("HOME", "TMPDIR", "MPLCONFIGDIR"):
        os.environ[k] = path
    tempfile = sys.modules.get("tempfile")
    if tempfile is not None:
        tempfile.tempdir = None  # recomputed from TMPDIR on first use


def without_epoll():
    """Jobs get no epoll: seccomp refuses epoll_create. Its watches count
    against fs.epoll.max_user_watches, a budget per uid that a non-root
    server shares with its jobs, and an outside attack filled it (a watch
    per file and descriptor number, millions from 256 descriptors) until
    the server could not accept a connection. selectors, asyncio and
    subprocess use poll(2) instead, as where epoll does not exist."""
    import select
    if hasattr(select, "epoll"):
        del select.epoll
    selectors.DefaultSelector = selectors.PollSelector


def child_main(cfg, warm, sock, scratch, guard=None):
    """Runs in the forked child: the template's, or the zygote's, which
    gives guard, its protect_pid program. Never returns.

    Everything that does not depend on the job happens before the child
    reports itself ready, off the job's path: the warm-up, its scratch
    directory, reseeding, and confinement (no_new_privs, Landlock, seccomp).
    Only reading the job, wiring stdio and the rlimits (the CPU limit
    depends on the job's timeout) are left for when the job arrives."""
    code = 0
    me = os.getpid()
    nonce = b""
    res_w = -1
    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        # The warm-up first: the pages it copies include those the rest of
        # the preparation writes (the probe reports them once confined).
        if warm:
            in_background(lambda: warm_up(cfg.get("warm_script")))
        else:
            reseed()
        prctl(PR_SET_DUMPABLE, 0)
        os.setsid()  # its own process group: kill(0) cannot reach the template
        # The fork ran none of threading's at-fork code, which would set this.
        threading.main_thread()._set_native_id()
        if guard is not None:
            gc.enable()  # the zygote's loop runs without
        else:  # (the zygote closed these, and their numbers may be reused)
            # The template's own oom_score_adj, open for writing: never the job's.
            os.close(OOM.fd)
            for fd in (CTL_IN, CTL_OUT, JOB_FDS):
                os.close(fd)
        fresh_scratch(scratch)
        statm = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
        pagemap = None
        if warm and PROBE:
            try:
                pagemap = open_pagemap()
            except OSError:
                pass  # no report: every warm child runs the warm-up script
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        install_landlock(cfg["landlock"], cfg["landlock_abi"], [scratch])
        # The guard first: the server's program refuses a job any program
        # of its own, so nothing is installed after it.
        if guard is not None:
            install_seccomp(guard)
        install_seccomp(cfg["seccomp"])
        without_epoll()
        ready = b"W"
        if pagemap is not None:
            try:
                ready += json.dumps(written_pages(pagemap)).encode()
            except (OSError, ValueError):
                pass
        sock.send(ready)  # the template may announce it ready
        msg, fds, _, _ = socket.recv_fds(sock, 16, 4)
        if not msg or len(fds) != 4:
            os._exit(0)  # the template let this child go unused
        job_fd, out_w, err_w, res_w = fds
        job = json.loads(read_fd(job_fd))
        nonce = job["nonce"].encode()
        v1 = job.get("v1")
        inputs, input_err = {}, None
        if v1 is not None:
            # Per-request limits only ever lower the server's.
            mem = v1.get("memory_bytes") or 0
            if 0 < mem and (cfg["memory_bytes"] <= 0 or mem < cfg["memory_bytes"]):
                cfg = dict(cfg, memory_bytes=mem)
            try:
                write_input_files(v1.get("files") or ())
                inputs = {f["path"]: base64.b64decode(f["content"]) for f in v1.get("files") or ()}
            except (OSError, ValueError) as e:
                input_err = "could not write the request's files: %s" % describe(e, cfg)
        set_limits(cfg, job["timeout_ms"] / 1000.0, statm)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        # Close everything else: the job sees only stdio and its result pipe.
        os.closerange(3, res_w)
        os.closerange(res_w + 1, 1 << 20)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8",
                                      errors="backslashreplace", write_through=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                      errors="backslashreplace", write_through=True)
        base = usage_base()
        if input_err is not None:
            out = {"error": input_err, "kind": "exception"}
            v1["error_info"] = {"type": "OSError", "message": input_err, "line": None, "traceback": None}
        else:
            out = run_script(job["script"], cfg, v1)
        if _getpid() != me:
            _exit(0)  # a process the script forked: only the job process answers
        if v1 is not None:
            out = with_v1(out, v1, scratch, inputs, base)
        if isinstance(out, dict):
            out = _dumps(out, ensure_ascii=False)
        try:
            data = out.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: escape them, JSON allows that
            data = _dumps(json.loads(out), ensure_ascii=True).encode()
        end_output()
        write_frame(res_w, nonce + data)
    except BaseException as e:  # the child must never return into the template's loop
        code = 120
        try:
            if _getpid() != me:
                _exit(0)
            end_output()
            if res_w >= 0:
                write_frame(res_w, nonce + _dumps({"error": "worker: %s" % describe(e, cfg),
                                                   "kind": "internal"}).encode())
        except BaseException:
            pass
    _exit(code)


def end_output():
    """Closes stdout and stderr before the result is written: the server
    answers once the result frame is complete and both pipes are at EOF (or,
    when processes the job started still hold them, once the template has
    killed those)."""
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except BaseException:
            pass
    for fd in (1, 2):
        try:
            os.close(fd)
        except OSError:
            pass


# ------------------------------------------------------ forks and warm pages

MADV_POPULATE_WRITE = 23  # Linux 5.14
PAGE = os.sysconf("SC_PAGE_SIZE")
libc.fork.restype = ctypes.c_int
libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


def fork():
    """fork(2) without CPython's at-fork machinery, while this process runs
    a single Python thread (the template always does).

    os.fork() re-initialises the runtime's locks in the child and runs every
    os.register_at_fork hook (threading's, random's, logging's...): Python
    code whose first touches cost the child about 200 copy-on-write page
    faults, measured here as two thirds of a bare fork-and-exit's CPU. With
    one thread no lock is held across the fork, so there is nothing to
    re-initialise; the child reseeds its generators itself (reseed), and
    glibc's own atfork handlers (malloc's, OpenBLAS's thread pool) still run."""
    if threading.active_count() > 1:
        return os.fork()
    pid = libc.fork()
    if pid < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return pid


class WarmPages:
    """Which of the template's pages a seed-like job writes, so that a
    waiting child can copy them in one madvise(MADV_POPULATE_WRITE) per run
    of pages instead of running the warm-up script, which takes the same
    copy-on-write faults one trap at a time and runs Python besides.

    A probe child (the first warm child, then every REFRESH-th) runs the
    warm-up script and reports the pages it now maps exclusively, read from
    /proc/self/pagemap. Probes run only our own code, before any job. Where
    the kernel lacks MADV_POPULATE_WRITE or pagemap (before 5.14, gVisor),
    every warm child runs the script as before."""

    REFRESH = 64
    MAX_BYTES = 64 << 20

    def __init__(self, cfg):
        self.ranges = None  # [(address, length)], from the last probe
        self.forks = 0
        # A probe child is dumpable while it opens its own pagemap.
        self.supported = unwatched(cfg) and populate_supported()

    def probe_due(self):
        """Counts a warm fork; whether it should probe."""
        self.forks += 1
        return self.supported and (self.ranges is None or self.forks % self.REFRESH == 0)

    def update(self, ranges):
        total = 0
        kept = []
        for addr, length in ranges:
            total += length
            if total > self.MAX_BYTES:
                break
            kept.append((addr, length))
        self.ranges = kept or None


def unwatched(cfg):
    """Whether a process of this worker may be dumpable for a moment before
    any job of the worker exists: no other worker's job may be able to open
    its /proc files then, because they cannot see it (a pid namespace: this
    template is its init), cannot reach it (another uid), or cannot ptrace
    out of their Landlock domain."""
    return bool(os.getpid() == 1 or cfg.get("own_uid") or cfg.get("landlock_abi", 0) >= 1)


def populate_supported():
    buf = ctypes.create_string_buffer(2 * PAGE)
    addr = (ctypes.addressof(buf) + PAGE - 1) // PAGE * PAGE
    return libc.madvise(addr, PAGE, MADV_POPULATE_WRITE) == 0


READ_AHEAD_CHECK = 64  # pages read ahead between two looks at the machine's run queue


def machine_idle(loadavg_fd):
    """Whether this thread is the only runnable task on the machine, by
    /proc/loadavg's "running/total" field."""
    return int(os.pread(loadavg_fd, 64, 0).split()[3].split(b"/")[0]) <= 1


def populate(ranges):
    """Copies the given pages into this process now, as writes would; then,
    for as long as no other task on the machine wants a CPU, reads a byte
    of each.

    The reads are for virtual machines that map a process's pages for the
    hypervisor on its first access to each (this repository's VM): there a
    copied page still costs its first touch, and the seed's pandas job,
    sent 0.15 s after the last answer, answered in 15.8 ms instead of 25.5
    with its pages read ahead, for the same CPU. But there two processes
    that fault at once each pay twice, so the reads give way whenever
    another task is runnable (another worker's job, say), and what they
    leave out the job touches itself, as before (benchmarks/README.md,
    "Cost per job"). Elsewhere reading a page that is mapped costs a TLB
    miss."""
    copied = [(addr, length) for addr, length in ranges
              if libc.madvise(addr, length, MADV_POPULATE_WRITE) == 0]  # a range gone since the probe: skipped
    try:
        fd = os.open("/proc/loadavg", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        read = ctypes.string_at
        busy, since = False, READ_AHEAD_CHECK
        for addr, length in copied:
            if since >= READ_AHEAD_CHECK:
                busy, since = not machine_idle(fd), 0
            since += length // PAGE
            if not busy:
                for page in range(addr, addr + length, PAGE):
                    read(page, 1)
    except (OSError, ValueError, IndexError):
        pass
    finally:
        os.close(fd)


def open_pagemap():
    """This process's /proc/self/maps and pagemap, open for written_pages:
    opened before Landlock (which may hide /proc), read once the child is
    confined, so that the report covers the confining code's pages too."""
    # A non-dumpable process's /proc files are root's: be dumpable for as
    # long as opening them takes (the access check happens at open). No job
    # of this worker exists yet; WarmPages probes only where no other
    # worker's job can open these files either.
    prctl(PR_SET_DUMPABLE, 1)
    try:
        maps = os.open("/proc/self/maps", os.O_RDONLY | os.O_CLOEXEC)
        try:
            return maps, os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
        except BaseException:
            os.close(maps)
            raise
    finally:
        prctl(PR_SET_DUMPABLE, 0)


def written_pages(fds):
    """Runs of pages this process maps exclusively (written since the fork,
    or new) in its private writable mappings, adjacent runs and one-page
    gaps merged: [(address, length)]. Closes fds (open_pagemap's)."""
    import numpy as np
    maps_fd, fd = fds
    runs = []
    try:
        with os.fdopen(maps_fd, "rb") as f:
            maps_fd = -1
            maps = f.read().splitlines()
        for line in maps:
            f = line.split()
            if f[1][1:2] != b"w" or f[1][3:4] != b"p" or (len(f) > 5 and f[5] == b"[stack]"):
                continue
            lo, hi = (int(x, 16) for x in f[0].split(b"-"))
            if hi - lo > 1 << 30:
                continue
            ents = np.frombuffer(os.pread(fd, (hi - lo) // PAGE * 8, lo // PAGE * 8), dtype=np.uint64)
            present_exclusive = ((ents >> np.uint64(63)) & (ents >> np.uint64(56)) & np.uint64(1)).astype(np.int8)
            edges = np.flatnonzero(np.diff(np.concatenate(([0], present_exclusive, [0]))))
            for s, e in zip(edges[0::2].tolist(), edges[1::2].tolist()):
                addr = lo + s * PAGE
                if runs and addr - (runs[-1][0] + runs[-1][1]) <= PAGE:
                    runs[-1][1] = addr + (e - s) * PAGE - runs[-1][0]
                else:
                    runs.append([addr, (e - s) * PAGE])
    finally:
        os.close(fd)
        if maps_fd >= 0:
            os.close(maps_fd)
    return runs


WARM = None  # WarmPages, in warm mode where the kernel supports it


def warm_up(script):
    """A warm child's preparation for a job that uses the preload, and its
    reseeding: copy the pages such a job writes, or run the warm-up script
    (as a probe, or where there is no probe).

    Plain children (jobs that name no preloaded module) do neither: copying
    a hello-world's pages measured 7% more CPU per job, not less."""
    if WARM is not None and WARM.ranges is not None and not PROBE:
        populate(WARM.ranges)
    elif script:
        warm_child(script)
    reseed()


def in_background(fn):
    """Runs fn in a thread of its own at nice 19, waits for it and returns
    what it returned. A child prepares itself after the previous job's
    answer, while another worker may be running the next job: at nice 19 it
    gets a sixty-eighth of the CPU a job at nice 0 gets beside it, and all
    of it when no job wants it. A thread's nice value is its own, so the
    main thread, which will run the job, stays at 0 (coming back up from 19
    would take privileges or an RLIMIT_NICE a server rarely has).

    A bare _thread, not threading.Thread: the threading module's machinery
    touches enough shared objects to cost a child ~250 more copy-on-write
    faults (13 ms of CPU against 4.6 for a bare thread, on this VM:
    benchmarks/README.md, "Cost per job").

    Not SCHED_IDLE: jobs that keep every CPU busy for their whole time limit
    would then hold the other workers' preparation back for as long, where
    nice 19 still finishes it in a fraction of a second."""
    out = []
    done = _thread.allocate_lock()
    done.acquire()

    def run():
        try:
            try:
                os.setpriority(os.PRIO_PROCESS, _thread.get_native_id(), 19)
            except OSError:
                pass
            out.append(fn())
        finally:
            done.release()

    _thread.start_new_thread(run, ())
    done.acquire()
    if not out:
        raise RuntimeError("warming up failed")
    return out[0]


PROBE = False  # set in the template before forking a probe child


class OOMScore:
    """Makes each job process the kernel's first choice when memory runs out
    (in the worker's cgroup, the container's or the host's), before the
    template or the server: a job starts with oom_score_adj 1000.

    A process sets its own, through /proc/self/oom_score_adj, and only while
    it is dumpable: the template and the job processes are not (that file is
    root's then). So the template opens the file once, while it still is,
    and around each fork raises its score to 1000 for the child to inherit,
    then lowers it back: a process may go back down to where it started
    without privilege. The child closes the descriptor first thing."""

    def __init__(self):
        self.fd = os.open("/proc/self/oom_score_adj", os.O_RDWR | os.O_CLOEXEC)
        self.own = os.pread(self.fd, 32, 0).strip() or b"0"

    def fork(self):
        """fork(), the child with oom_score_adj 1000."""
        os.write(self.fd, b"1000")
        pid = -1
        try:
            pid = fork()
        finally:
            if pid != 0:
                os.write(self.fd, self.own)
        return pid


OOM = None  # OOMScore, set in main()


# ------------------------------------------------------------------ zygote

# clone(2) as glibc's fork calls it, plus CLONE_PARENT: the new process is
# the caller's sibling. Per machine: the syscall numbers of clone and of
# get/set_robust_list, where glibc keeps a thread's tid (struct pthread's
# tid, which glibc's fork points CLONE_CHILD_SETTID at), and whether clone
# takes tls before ctid; elsewhere no zygote.
CLONE_PARENT, CLONE_CHILD_SETTID, CLONE_CHILD_CLEARTID = 0x8000, 0x01000000, 0x00200000
CLONE_ABI = {  # clone, get_robust_list, set_robust_list, tid offset, tls first
    "x86_64": (56, 274, 273, 0x2D0, False),
    "aarch64": (220, 100, 99, 0xD0, True),
}
libc.syscall.restype = ctypes.c_long
libc.pthread_self.restype = ctypes.c_void_p


class Zygote:
    """A process the template forks once, before any job has run, which
    from then on forks the job children in its place, as the template's
    children (CLONE_PARENT): the template still reaps, watches and kills
    them as before.

    Why: every fork write-protects the forking process's pages, and every
    page it writes afterwards while a child still shares it costs a
    copy-on-write fault. The template runs Python between jobs (reading
    frames, watching, killing, wiping), about 355 such faults per job. The
    zygote runs a loop of a few lines and nothing else, and the template,
    which no longer forks, copies each page it writes once, then never
    again.

    It also keeps what the template learns about jobs out of the jobs: the
    template reads the names a job gave its files and processes while
    watching and cleaning up, and freed memory keeps them, but the zygote
    is a copy taken before the first job. So it is never replaced from the
    template: a zygote that dies or stops answering (5 s) makes the template
    fatal, and the server starts a fresh worker.

    The zygote holds no descriptor but its socket to the template (and,
    where it could open it, its own oom_score_adj), runs no job code, and
    is as protected from jobs as the template: every job process's seccomp
    filter refuses to signal it (protect_pid), and it is non-dumpable."""

    TIMEOUT = 5  # seconds for the zygote to answer a fork request (it takes milliseconds)

    def __init__(self, cfg):
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # Where it can, the zygote keeps the template's oom_score_adj and
        # raises it to 1000 only around each clone, as the template does
        # (OOMScore); elsewhere it starts at 1000, so that its children do.
        private = unwatched(cfg)
        pid = fork() if private else OOM.fork()
        if pid == 0:
            self.sock.close()
            zygote_main(cfg, theirs, private)
        theirs.close()
        self.pid = pid
        self.sock.settimeout(self.TIMEOUT)
        try:
            # Its first words: whether clone() works here (a test child,
            # exited at once, which must be the template's to reap), or why
            # not.
            hello = self.sock.recv(64)
            if hello[:1] != b"R" or not hello[1:].isdigit():
                raise OSError(errno.ENOSYS, "zygote: %s" % hello[:40].decode("ascii", "replace"))
            try:
                os.waitpid(int(hello[1:]), 0)
            except ChildProcessError:
                raise OSError(errno.ECHILD, "clone ignores CLONE_PARENT here (gVisor does)") from None
        except BaseException:
            self.stop()
            raise

    def fork(self, warm, scratch):
        """Asks for a child; returns its pid and the template's end of its
        socket. Raises if the zygote is gone, refuses or does not answer."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            socket.send_fds(self.sock, [(b"W" if warm else b"P") + scratch.encode()], [theirs.fileno()])
            reply = self.sock.recv(64)
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        if not reply.isdigit():
            mine.close()
            raise RuntimeError("the zygote %s" % ("is gone" if not reply else "could not fork: " + (
                os.strerror(int(reply[1:])) if reply[1:].isdigit() else repr(reply[:40]))))
        return int(reply), mine

    def stop(self):
        """Kills a zygote that failed to start. Only then: by pid, which is
        its own until the template reaps it, and nothing has reaped yet. (A
        zygote that fails later is never stopped: the template goes.)"""
        self.sock.close()
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)


ZYGOTE = None  # Zygote, in warm mode where clone_supported()


def clone_supported():
    """Whether this machine's glibc keeps the thread's tid where CLONE_ABI
    says: the only way the zygote's children get their own tid right."""
    abi = CLONE_ABI.get(os.uname().machine)
    if abi is None:
        return False
    tid = ctypes.c_int32.from_address(libc.pthread_self() + abi[3]).value
    return tid == threading.get_native_id()


def clone_args():
    """The arguments of clone(2) as glibc's fork passes them, plus
    CLONE_PARENT (the new process is the caller's sibling), for
    libc.syscall: CLONE_CHILD_SETTID points the kernel at the child's struct
    pthread, so it holds its own tid. Made once: the zygote's loop should
    write as few of its pages as it can (see Zygote)."""
    nr, _, _, tid_off, tls_first = CLONE_ABI[os.uname().machine]
    ctid = ctypes.c_void_p(libc.pthread_self() + tid_off)
    flags = ctypes.c_ulong(CLONE_PARENT | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | signal.SIGCHLD)
    null = ctypes.c_void_p(0)
    if tls_first:
        return (ctypes.c_long(nr), flags, null, null, null, ctid)
    return (ctypes.c_long(nr), flags, null, null, ctid, null)


def robust_list_args():
    """set_robust_list's arguments for a child of this process: the kernel
    forgets a process's robust futex list at fork and glibc's fork registers
    it again (owner-died reporting of robust mutexes); a raw clone must do
    that itself. None where get_robust_list is refused."""
    _, get_nr, set_nr, _, _ = CLONE_ABI[os.uname().machine]
    head, size = ctypes.c_void_p(), ctypes.c_size_t()
    if libc.syscall(ctypes.c_long(get_nr), ctypes.c_long(0), ctypes.byref(head), ctypes.byref(size)) != 0:
        return None
    return (ctypes.c_long(set_nr), head, size)


def zygote_main(cfg, sock, private):
    """The zygote's loop: a request in (b"W" or b"P", then the child's
    scratch path, and the child's socket), a child's pid out. No at-fork
    handlers run in its children (as with fork() above): the zygote is
    single-threaded and never ran numpy after its own fork (OpenBLAS's
    handler, which stops its threads, ran then). Never returns."""
    global PROBE
    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        gc.disable()
        PROBE = False  # what WARM holds now is what every child copies
        keep = sock.fileno()
        os.closerange(3, keep)
        os.closerange(keep + 1, 1 << 20)
        oom = -1
        if private:
            # Dumpable for as long as opening its own file takes (see
            # unwatched).
            prctl(PR_SET_DUMPABLE, 1)
            try:
                oom = os.open("/proc/self/oom_score_adj", os.O_RDWR | os.O_CLOEXEC)
            finally:
                prctl(PR_SET_DUMPABLE, 0)
        me = os.getpid()
        guard = protect_pid(cfg["signal_syscalls"], me)
        args, robust = clone_args(), robust_list_args()
        syscall, get_errno, close, write = libc.syscall, ctypes.get_errno, os.close, os.write
        recvmsg, send = sock.recvmsg, sock.send
        space = socket.CMSG_SPACE(4)
        high, own = b"1000", os.pread(oom, 32, 0).strip() if oom >= 0 else b""
        pid = syscall(*args)  # does clone() work here? (gVisor, seccomp profiles)
        if pid == 0:
            _exit(0)
        send(b"R%d" % pid if pid > 0 else b"E%d" % get_errno())
        while pid > 0:
            msg, anc, _, _ = recvmsg(4096, space)
            if not msg or len(anc) != 1 or len(anc[0][2]) != 4:
                break
            fd = int.from_bytes(anc[0][2], sys.byteorder)
            if oom >= 0:
                write(oom, high)
            pid = syscall(*args)
            if pid == 0:
                if robust is not None:
                    syscall(*robust)
                if oom >= 0:
                    close(oom)
                sock.close()
                child_main(cfg, msg[:1] == b"W", socket.socket(fileno=fd), msg[1:].decode(), guard)
            if oom >= 0:
                write(oom, own)
            close(fd)
            send(b"%d" % pid if pid > 0 else b"E%d" % get_errno())
    except BaseException:
        pass
    _exit(0)


# ---------------------------------------------------------------- template


class Child:
    def __init__(self, pid, sock, scratch):
        self.pid, self.sock, self.scratch = pid, sock, scratch
        try:
            self.pidfd = os.pidfd_open(pid)
        except OSError:  # old kernels and gVisor: poll with waitpid instead
            self.pidfd = None
        self.reaped = False

    def close(self):
        self.sock.close()
        if self.pidfd is not None:
            try:
                os.close(self.pidfd)
            except OSError:
                pass


def fork_child(cfg, warm):
    """A new waiting child, from the zygote where there is one, ready."""
    global PROBE
    scratch = os.path.join(cfg["scratch"][0], "job-" + os.urandom(6).hex())
    pages = WARM if warm else None
    if ZYGOTE is not None:
        pid, sock = ZYGOTE.fork(warm, scratch)
        child = Child(pid, sock, scratch)
    else:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        PROBE = pages is not None and pages.probe_due()
        pid = OOM.fork()
        if pid == 0:
            mine.close()
            child_main(cfg, warm, theirs, scratch)
        theirs.close()
        child = Child(pid, mine, scratch)
    mine = child.sock
    msg = mine.recv(4 << 20)
    if msg[:1] != b"W":
        raise RuntimeError("job process died while warming up")
    if len(msg) > 1:
        pages.update(json.loads(msg[1:]))
    return child


def start_zygote(cfg):
    """Starts the zygote, where it can work: warm mode, after the first
    warm child (the probe, whose report WARM now holds for every child to
    copy). Returns why there is none, or None when it runs; where clone()
    fails the template forks every child itself, as it did before there
    was a zygote."""
    global ZYGOTE
    if cfg.get("one_shot") or not cfg.get("signal_syscalls"):
        return "not asked for"
    if not clone_supported():
        return "no clone() layout known for this machine and libc"
    try:
        ZYGOTE = Zygote(cfg)
    except TimeoutError:
        raise  # a zygote too slow to start is no reason to fork the jobs from the template
    except (OSError, ValueError) as e:
        return str(e)
    return None


def zygote_pids():
    return [ZYGOTE.pid] if ZYGOTE is not None else []


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
                st = f.read()
        except OSError:
            continue
        fields = st[st.rfind(b")") + 2:].split()
        pid = int(name)
        parent[pid] = int(fields[1])
        if job_sid is not None and int(fields[3]) == job_sid and pid != me:
            victims.add(pid)
    frontier = {me}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier and p not in victims and p not in keep}
        victims |= frontier
    return victims


CHILDREN_LISTS = False  # whether this kernel's children lists named the waiting children


def listed_children():
    """This process's children, zombies included until reaped, from its
    threads' children lists; None where those cannot be read (gVisor has
    no such file), and where any of them cannot (unlike children_of, whose
    partial answer suits the memory watch's next poll: a partial one here
    would let kill_all stop early). They can only grow while this process,
    their only reaper, reads them, so the read misses no one."""
    out = set()
    try:
        for tid in os.listdir("/proc/self/task"):
            with open("/proc/self/task/%s/children" % tid, "rb") as f:
                out.update(int(pid) for pid in f.read().split())
    except (OSError, ValueError):
        return None
    return out


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
CFG = {}  # the worker's configuration, once read


KILL_TIMEOUT = 60  # seconds, unless the server's config says (kill_timeout_s)


def kill_all(job_sid, keep, everyone=False, beat=None):
    """SIGKILLs every process the job left behind and reaps them, sparing the
    waiting children in keep. The job process made its own session
    (job_sid): without a subreaper, orphans are found by that session
    instead of by ancestry.

    A chain of processes that each start the next and exit can outrun a
    scan of /proc. After 100 rounds that still find processes not seen
    before, where everyone is True (this process is its pid namespace's
    init, or its uid is its own), kill(-1) ends them in one call: the kernel
    walks every process under a lock that fork waits for. It takes the
    waiting children and the zygote too: the caller replaces the children,
    and a worker without its zygote is replaced whole. Processes that are
    only slow to die (a job's 40 processes of 64,000 memory areas each take
    seconds) are not a chain: they get no kill(-1), which would cost the
    worker for nothing.

    A killed process can take the kernel seconds to tear down (millions of
    epoll watches): the scans slow down after the first rounds, beat() is
    called every second to tell the server the worker is at it, and only
    the server's kill timeout gives up."""
    scan_session = job_sid if not SUBREAPER else None
    limit = CFG.get("kill_timeout_s", KILL_TIMEOUT)
    start = last_beat = time.monotonic()
    seen = set()
    for round in itertools.count():
        reap()
        # The usual case, a job that left nothing, without reading every
        # process of the host (basic level): a subreaper whose children are
        # all kept has no process of the job left, since each one has an
        # ancestor among its children (an orphan is reparented here).
        if SUBREAPER and CHILDREN_LISTS:
            listed = listed_children()
            if listed is not None and listed.issubset(keep):
                return
        # Zombies count too: a killed grandchild stays in /proc until the
        # subreaper (this process) inherits and reaps it.
        victims = descendants(scan_session, keep)
        if not victims:
            return
        chain = not victims <= seen
        seen |= victims
        now = time.monotonic()
        if now - start > limit:
            raise RuntimeError("could not kill the job's processes in %ds" % limit)
        if beat is not None and now - last_beat >= 1:
            beat()
            last_beat = now
        if everyone and round >= 100 and chain:
            os.kill(-1, signal.SIGKILL)
            keep = ()
        else:
            for pid in victims:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(0.001 if round < 100 else 0.02)


def empty_dir(top, keep=()):
    """Removes everything inside top, whatever a job left there: any depth
    (subdirectories are moved up into top one level at a time, so no path
    grows and no recursion is needed), any permission bits (the owner can
    always chmod), symlinks never followed. Recreates top if a job removed
    or replaced it. Entries named in keep stay. Runs only after every job
    process is dead, so nothing changes underneath it."""
    try:
        st = os.lstat(top)
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(top)
            raise FileNotFoundError
    except FileNotFoundError:
        os.mkdir(top, 0o700)
    os.chmod(top, 0o700)
    topfd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        while True:
            names = os.listdir(topfd)
            if not names:
                return
            names = [n for n in names if n not in keep]
            if not names:
                return
            for name in names:
                if not is_dir(name, topfd):
                    os.unlink(name, dir_fd=topfd)
                    continue
                os.chmod(name, 0o700, dir_fd=topfd)
                sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=topfd)
                try:
                    for entry in os.listdir(sub):
                        if is_dir(entry, sub):
                            os.chmod(entry, 0o700, dir_fd=sub)  # renaming a directory writes its ".."
                            os.rename(entry, ".wipe-" + os.urandom(8).hex(), src_dir_fd=sub, dst_dir_fd=topfd)
                        else:
                            os.unlink(entry, dir_fd=sub)
                finally:
                    os.close(sub)
                os.rmdir(name, dir_fd=topfd)
    finally:
        os.close(topfd)


def is_dir(name, dir_fd):
    return stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)


def wipe(dirs, waiting):
    """Empties the scratch directories but for the waiting children's own,
    and resets what a job could leave on the directories themselves: their
    times and extended attributes (which seccomp refuses to set anyway)."""
    keep = {os.path.basename(c.scratch) for c in waiting}
    for d in dirs:
        empty_dir(d, keep)
        os.utime(d, (0, 0))
        for name in os.listxattr(d):
            os.removexattr(d, name)


def recv_job_fds(sock):
    """The job's descriptors from the server: memfd, stdout, stderr, result."""
    msg, fds, flags, _ = socket.recv_fds(sock, 16, 4)
    if not msg:
        raise EOFError
    if len(fds) != 4 or flags & socket.MSG_CTRUNC:
        for fd in fds:
            os.close(fd)
        raise ProtocolError("job came with %d descriptors, want 4" % len(fds))
    return fds


MEMORY_POLL = 0.025  # seconds between JobWatch checks


def children_of(pid):
    """Pids of pid's children, from every thread's children list (no ptrace
    access needed)."""
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid), "rb") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def job_memory_kib(pid):
    """Anonymous and shared-memory resident KiB of pid, and its page tables,
    from /proc/<pid>/status, which (unlike smaps) needs no ptrace access to
    a non-dumpable job. File-backed pages (the interpreter, libraries) are
    left out: they are the page cache's, shared with everyone. Page tables
    are not: one page of a file mapped 60,000 times, 2 MiB apart, costs
    240 MiB of them and almost no resident memory."""
    kib = 0
    try:
        with open("/proc/%d/status" % pid, "rb") as f:
            for line in f:
                if line.startswith((b"RssAnon:", b"RssShmem:", b"VmPTE:")):
                    kib += int(line.split()[1])
    except (OSError, IndexError, ValueError):
        pass
    return kib


def free_bytes(path):
    """Free bytes of the filesystem path is on, or None."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bfree * st.f_frsize


MAX_ENTRIES = 100000  # files and directories a job may make, unless the config says (max_entries)
MAX_DEPTH = 1000  # how deep the disk watch follows a job's directories


def walk_depth():
    """How deep disk_usage can follow directories: it holds a descriptor per
    level. Raises this process's soft RLIMIT_NOFILE for that where the hard
    limit allows (a job's own limit is set apart, in set_limits)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = MAX_DEPTH + 64
    if soft < want and (hard == resource.RLIM_INFINITY or hard > soft):
        soft = want if hard == resource.RLIM_INFINITY else min(want, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        except (OSError, ValueError):
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return max(16, min(MAX_DEPTH, soft - 64))


def disk_usage(top, max_entries, max_depth):
    """Bytes of disk the tree at top takes, and what ends the job: None,
    "file_limit" (more than max_entries entries), "disk_too_deep"
    (directories nested deeper than max_depth) or "disk_unreadable" (a
    directory this process cannot open, even after making it readable: it
    runs as the job's uid, so the job made it so, and could hide any amount
    in it). Symlinks are never followed. The walk goes by directory
    descriptors, never by path: a job's tree may be longer than PATH_MAX."""
    total = entries = 0
    try:
        fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0, None
    except OSError:
        return 0, "disk_unreadable"
    stack = []  # [(dir fd, names of its subdirectories not walked yet)]
    try:
        while True:  # fd: the directory to list next
            subdirs = []
            with os.scandir(fd) as it:
                for e in it:
                    entries += 1
                    if entries > max_entries:
                        return total, "file_limit"
                    try:
                        st = e.stat(follow_symlinks=False)
                    except OSError:
                        continue  # removed while we walk
                    total += st.st_blocks * 512
                    if stat.S_ISDIR(st.st_mode):
                        subdirs.append(e.name)
            stack.append((fd, subdirs))
            fd = None
            while stack and fd is None:
                parent, names = stack[-1]
                if not names:
                    os.close(parent)
                    stack.pop()
                    continue
                if len(stack) >= max_depth:
                    return total, "disk_too_deep"
                fd = open_subdir(parent, names.pop())
            if fd is None:
                return total, None
    except Unreadable:
        return total, "disk_unreadable"
    finally:
        if fd is not None:
            os.close(fd)
        for parent, _ in stack:
            os.close(parent)


class Unreadable(Exception):
    """A directory of the job's that its owner cannot open."""


def open_subdir(parent, name):
    """A descriptor of directory name in parent, or None if it is gone or is
    no longer a directory (a symlink now, say). Raises Unreadable if it
    cannot be opened even after giving its owner, this process's uid,
    access again.
    The chmod goes through an O_PATH descriptor, so a job that swaps the
    directory for a symlink meanwhile cannot point it elsewhere."""
    try:
        pfd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            return None
        raise Unreadable from e
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    try:
        try:
            return os.open(".", flags, dir_fd=pfd)
        except PermissionError:
            pass
        try:
            os.chmod("/proc/self/fd/%d" % pfd, 0o700)
            return os.open(".", flags, dir_fd=pfd)
        except OSError as e:
            raise Unreadable from e
    finally:
        os.close(pfd)


def used_inodes(paths):
    """Inodes in use on the filesystems at paths (the sandbox's tmpfs
    mounts), or None."""
    try:
        return sum(st.f_files - st.f_ffree for st in map(os.statvfs, paths))
    except OSError:
        return None


class JobWatch:
    """What rlimits cannot cap, checked every MEMORY_POLL while a job runs:

    - memory, where no memory cgroup caps all of a job's processes together
      (a non-root server, Docker, gVisor): RLIMIT_AS caps each process, and
      this sums the anonymous and shared-memory resident size and the page
      tables of the job's processes beyond what each inherited from the
      template. Pages that two job processes share count once per process:
      a conservative estimate;
    - files and directories, which cost kernel memory even when empty: at
      namespaces level the inodes in use on the sandbox's tmpfs mounts
      (inode_paths) beyond those at the job's start, at basic level the
      entries of the scratch tree, at most max_entries (checked every
      fourth poll);
    - disk, at basic level, where the job's scratch directory is not a tmpfs
      of bounded size: RLIMIT_FSIZE caps each file, this caps them all
      (checked every fourth poll). Files with no name (O_TMPFILE, or deleted
      while open) are in no directory, and a job's descriptors are not ours
      to read: the filesystem's free space is. When it has shrunk since the
      job began by more than hidden_bytes (the server's unnamed_disk_bytes:
      what all workers' jobs may hold at once) plus the job's own limit, the
      job ends. Another job's or the host's writes count too, so the check
      bounds the harm and is no quota: every job running when the disk
      shrinks that much ends, the one to blame among them. (Subtracting the
      job's own named files would let a job with named files outlast the
      others at that point.)
    - the host's table of open files (fs.file-max), where file_growth is
      given: a file a job maps stays open once its descriptor is closed
      (and every shared anonymous mapping is a file of its own), so
      RLIMIT_NOFILE does not see it, and 64 processes of 65,530 mappings
      each could fill the table, after which no process of the host could
      open a file. The job ends when the host's count (/proc/sys/fs/file-nr)
      has grown by more than file_growth since it began (checked every
      fourth poll); as for unnamed files, every job running then ends."""

    def __init__(self, memory_bytes, disk_bytes, hidden_bytes=0, inode_paths=(), max_entries=MAX_ENTRIES,
                 file_growth=0):
        self.memory_kib = memory_bytes >> 10
        self.disk_bytes = disk_bytes
        self.inode_paths = tuple(inode_paths)
        self.max_entries = max_entries
        self.max_depth = walk_depth() if disk_bytes else MAX_DEPTH
        self.inodes_at_start = None
        # How far the filesystem's free space may shrink during a job.
        self.unnamed_limit = hidden_bytes + disk_bytes if hidden_bytes and disk_bytes else 0
        self.base = job_memory_kib(os.getpid())
        self.ticks = 0
        self.free_at_start = None
        self.file_growth = file_growth
        self.files_at_start = None
        # Opened now: it must be readable where the server asks for the
        # check (fail closed), and a job's Landlock cannot hide it then.
        self.file_nr = os.open("/proc/sys/fs/file-nr", os.O_RDONLY | os.O_CLOEXEC) if file_growth else -1

    def open_files(self):
        """The host's count of allocated files."""
        return int(os.pread(self.file_nr, 64, 0).split()[0])

    def begin(self, child):
        """Called as a job starts."""
        self.ticks = 0
        self.files_at_start = self.open_files() if self.file_growth else None
        self.free_at_start = free_bytes(child.scratch) if self.unnamed_limit else None
        self.inodes_at_start = used_inodes(self.inode_paths) if self.inode_paths else None

    def check(self, child, keep):
        """Returns the status that ends the job, or None."""
        self.ticks += 1
        if self.memory_kib and self.memory_over(child.pid, keep):
            return "memory_limit"
        if self.ticks % 4:
            return None  # files: every fourth poll
        if self.file_growth and self.open_files() - self.files_at_start > self.file_growth:
            return "file_table_limit"
        if self.inodes_at_start is not None:
            used = used_inodes(self.inode_paths)
            if used is not None and used - self.inodes_at_start > self.max_entries:
                return "file_limit"
        if self.disk_bytes:
            used, over = disk_usage(child.scratch, self.max_entries, self.max_depth)
            if over:
                return over
            if used > self.disk_bytes:
                return "disk_limit"
            free = free_bytes(child.scratch) if self.unnamed_limit else None
            if None not in (free, self.free_at_start) and self.free_at_start - free > self.unnamed_limit:
                return "disk_limit_unnamed"
        return None

    def memory_over(self, job_pid, keep):
        me = os.getpid()
        frontier = [job_pid] + [p for p in children_of(me) if p != job_pid and p not in keep]
        procs = set()
        while frontier:
            p = frontier.pop()
            if p not in procs:
                procs.add(p)
                frontier += children_of(p)
        if len(procs) < 2:
            return False  # one process: RLIMIT_AS bounds it
        # The job process is charged what it holds beyond the template's
        # size: the template's pages it shares, or copied by writing to
        # them (RLIMIT_AS leaves it room for those), cost nothing new. Every
        # other process is charged all it holds: a process the job forked
        # that writes to the template's pages it inherited makes each one a
        # copy of its own without its size growing, and no file a process
        # may read without ptrace access says which pages are still shared
        # (outside attack round 14: 55 such processes held 2.2 GiB that
        # the watch did not see).
        return max(0, job_memory_kib(job_pid) - self.base) + sum(
            job_memory_kib(p) for p in procs if p != job_pid) > self.memory_kib


def run_job(child, fds, job, cfg, watch=None, keep=()):
    """Hands the job's descriptors to the waiting child, closes them here,
    and waits until the child exits, the time limit passes, the job's
    processes together go over the memory limit (with a watch) or the server
    cancels the job. Returns the "done" frame; the caller kills what is left."""
    timeout = job["timeout_ms"] / 1000.0
    start = time.monotonic()
    if watch is not None:
        watch.begin(child)
    try:
        socket.send_fds(child.sock, [b"J"], fds)
    except OSError:
        pass  # the child died while waiting; reported below as its exit status
    finally:
        for fd in fds:
            os.close(fd)
    sel = selectors.DefaultSelector()
    sel.register(CTL_IN, selectors.EVENT_READ)
    if child.pidfd is not None:
        sel.register(child.pidfd, selectors.EVENT_READ)
    meta = {"type": "done"}
    deadline = start + timeout

    def exited(status):
        child.reaped = True
        if os.WIFEXITED(status):
            meta.update(status="exited", exit_code=os.WEXITSTATUS(status))
        else:
            meta.update(status="signaled", signal=os.WTERMSIG(status))

    try:
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
            if watch is not None:
                left = min(left, MEMORY_POLL)
            events = sel.select(left)
            if not events and watch is not None:
                over = watch.check(child, keep)
                if over:
                    meta["status"] = over
                    if over == "disk_limit_unnamed":
                        meta["unnamed_limit_bytes"] = watch.unnamed_limit
                    if over == "file_limit":
                        meta["entries_limit"] = watch.max_entries
                    if over == "disk_too_deep":
                        meta["depth_limit"] = watch.max_depth
                    break
            for key, _ in events:
                if key.fd == CTL_IN:
                    msg = json.loads(read_frame(CTL_IN))
                    if msg.get("type") != "cancel":
                        raise ProtocolError("%r frame during a job" % msg.get("type"))
                    meta["status"] = "cancelled"
                    break
                os.kill(child.pid, signal.SIGKILL)  # no-op unless only the leader exited
                exited(os.waitpid(child.pid, 0)[1])
                break
    finally:
        sel.close()
    meta["elapsed_ms"] = int((time.monotonic() - start) * 1000)
    return meta


def cleanup(child, keep=(), beat=None):
    """Kills and reaps every process of the job, sparing the waiting children
    whose pids are in keep (beat: see kill_all)."""
    if not child.reaped:
        try:
            os.kill(child.pid, signal.SIGKILL)
            os.waitpid(child.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass  # a waiting child that died and was reaped already
        child.reaped = True
    kill_all(child.pid, set(keep), everyone=os.getpid() == 1 or bool(CFG.get("own_uid")), beat=beat)


def intact(child):
    """Whether a waiting child is still asleep on its job socket, with its
    scratch directory empty, ours and private. The job that ran beside it
    could have stopped or killed it (where Landlock does not scope signals),
    or written into its directory or opened it to others (where Landlock
    does not confine writes; Landlock does not govern chmod)."""
    try:
        with open("/proc/%d/stat" % child.pid, "rb") as f:
            st = f.read()
        if st[st.rfind(b")") + 2:].split()[0] != b"S":
            return False
        d = os.lstat(child.scratch)
        if not stat.S_ISDIR(d.st_mode) or stat.S_IMODE(d.st_mode) != 0o700 or d.st_uid != os.getuid():
            return False
        return not os.listdir(child.scratch)
    except OSError:
        return False


SHARED_DIRS = ("/tmp", "/var/tmp", "/dev/shm")


def sweep_shared_dirs(cfg):
    """Where nothing confines a job's writes to its scratch directory (basic
    level without Landlock: gVisor, old kernels), a job can leave files in
    the host's world-writable directories for the next tenant of this worker,
    which runs under the same uid. With a uid per worker (a root server),
    what this uid owns there is a job's leftover, but for the scratch roots:
    removed after every job. (A shared uid, where other workers' files would
    look the same, gets no such sweep; SECURITY.md says so.)"""
    if os.getpid() == 1 or cfg.get("landlock_abi") or not cfg.get("own_uid"):
        return
    me = os.getuid()
    roots = {os.path.realpath(d) for d in cfg["scratch"]}
    for top in SHARED_DIRS:
        try:
            names = os.listdir(top)
        except OSError:
            continue
        for name in names:
            path = os.path.join(top, name)
            try:
                st = os.lstat(path)
                if st.st_uid != me or os.path.join(os.path.realpath(top), name) in roots:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    empty_dir(path)
                    os.rmdir(path)
                else:
                    os.unlink(path)
            except OSError:
                pass


def serve(cfg):
    global CHILDREN_LISTS
    jobs = socket.socket(fileno=JOB_FDS)
    # Two waiting children in warm mode: one warmed for numpy and pandas
    # scripts, one plain for the rest (the server says which a job wants).
    kinds = (True, False) if cfg["warm"] else (False,)
    watch = None
    if cfg.get("watch_memory") or cfg.get("watch_disk") or cfg.get("watch_inodes") or cfg.get("file_table_growth"):
        watch = JobWatch(cfg["memory_bytes"] if cfg.get("watch_memory") else 0,
                         cfg["fsize_bytes"] if cfg.get("watch_disk") else 0,
                         cfg.get("unnamed_disk_bytes", 0),
                         cfg.get("watch_inodes") or (),
                         cfg.get("max_entries") or MAX_ENTRIES,
                         cfg.get("file_table_growth", 0))
    children = {}
    ready = {"type": "ready"}
    for warm in kinds:
        children[warm] = fork_child(cfg, warm)
        if not warm:
            continue
        # The server logs a worker without a zygote (SECURITY.md, "Known gaps").
        why = start_zygote(cfg)
        ready["forker"] = "template" if why else "zygote"
        if why:
            ready["no_zygote"] = why
        else:
            # Every job process's seccomp program protects the zygote's
            # pid, but the first, forked before it: the zygote forks its
            # replacement.
            first = children.pop(warm)
            cleanup(first, zygote_pids())
            first.close()
            children[warm] = fork_child(cfg, warm)
    # Where the kernel's children lists leave out a living child, kill_all
    # always reads every process instead.
    CHILDREN_LISTS = set([c.pid for c in children.values()] + zygote_pids()) <= (listed_children() or set())
    wipe(cfg["scratch"], children.values())
    send(ready)
    while True:
        try:
            job = json.loads(read_frame(CTL_IN))
        except EOFError:
            return
        if job.get("type") == "cancel":
            continue  # for a job that ended before the cancel arrived
        if job.get("type") != "job":
            raise ProtocolError("%r frame, want job" % job.get("type"))
        warm = cfg["warm"] and bool(job.get("warm"))
        child = children.pop(warm)
        keep = [c.pid for c in children.values()] + zygote_pids()
        if not intact(child):
            cleanup(child, keep)
            child.close()
            child = fork_child(cfg, warm)
        fds = recv_job_fds(jobs)
        # From here on the job may run: the server must not retry it elsewhere.
        send({"type": "started"})
        try:
            meta = run_job(child, fds, job, cfg, watch, keep)
        finally:
            cleanup(child, keep, beat=lambda: send({"type": "dying"}))
            child.close()
        # Every process that held the job's pipes is gone: the server reads
        # them to EOF.
        send(meta)
        wipe(cfg["scratch"], children.values())
        sweep_shared_dirs(cfg)
        if cfg.get("one_shot"):
            return
        children[warm] = fork_child(cfg, warm)
        send({"type": "ready"})


DEFAULT_PRELOAD = ("numpy", "pandas")

# The packages GET /info reports, by distribution name, when installed: the
# scientific stack a data scientist expects (see README "Python environment").
INFO_PACKAGES = ("numpy", "pandas", "scipy", "matplotlib", "scikit-learn", "statsmodels",
                 "seaborn", "sympy", "pillow", "pyarrow", "networkx")


def preload(names, scratch):
    """Imports the modules the template preloads, so that every job child
    inherits them: matplotlib as pyplot with the Agg backend. Raises with the
    module's name when one cannot be imported: the server fails closed."""
    import importlib
    for name in names:
        try:
            if name == "matplotlib" or name.startswith("matplotlib."):
                preload_matplotlib(scratch)
            importlib.import_module(name)
        except Exception as e:
            raise RuntimeError("--preload: cannot import %r: %s: %s" % (name, type(e).__name__, e)) from None


def python_info(preloaded):
    """The interpreter's version and the versions of INFO_PACKAGES that are
    installed, from their metadata (nothing is imported for it), and the
    modules preloaded."""
    from importlib import metadata
    packages = {}
    for name in INFO_PACKAGES:
        try:
            # The public version: without a local label such as Debian's
            # "+dfsg" (2.2.3+dfsg is what pandas.__version__ calls 2.2.3).
            packages[name] = metadata.version(name).split("+")[0]
        except Exception:
            continue
    return {"version": "%d.%d.%d" % sys.version_info[:3], "packages": packages,
            "preload": list(preloaded)}


def preload_matplotlib(scratch):
    """Imports matplotlib's pyplot with the Agg backend, so that a job's plot
    costs no import and no font scan: the font list is built here once, in a
    directory removed right after, and every job child inherits it in memory
    (its own MPLCONFIGDIR is its scratch directory, where it may write
    nothing else of matplotlib's). A job that imports pyplot itself, where
    it is not preloaded, gets Agg too (MPLBACKEND) and builds the font list
    in its scratch directory."""
    if "matplotlib.pyplot" in sys.modules:
        return
    import shutil
    import tempfile
    tmp = tempfile.mkdtemp(prefix=".mpl-", dir=scratch)
    os.environ["MPLCONFIGDIR"] = tmp
    os.environ["MPLBACKEND"] = "Agg"
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # builds the font list
        from matplotlib import font_manager
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # Render one figure, so that what a first plot initialises lazily (PIL,
    # tick machinery, text layout) is inherited: about a third of a first
    # plot's CPU time. Then drop the fonts it opened: a job child closes
    # every inherited descriptor, and a cached font would read through one.
    fig = plt.figure()
    fig.add_subplot().plot([1, 2, 3])
    fig.savefig(io.BytesIO(), format="png")
    plt.close("all")
    font_manager._get_font.cache_clear()
    gc.collect()


def self_test(cfg):
    """Fails closed: no_new_privs, Landlock and the seccomp program must
    install in a child before any job runs. Raises with the reason."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        what = "no_new_privs"
        try:
            prctl(PR_SET_NO_NEW_PRIVS, 1)
            what = "the Landlock rules (ABI %d)" % cfg["landlock_abi"]
            install_landlock(cfg["landlock"], cfg["landlock_abi"], [cfg["scratch"][0]])
            what = "the seccomp filter"
            install_seccomp(cfg["seccomp"])
            os._exit(0)
        except BaseException as e:
            os.write(w, ("cannot install %s in a job process: %s" % (what, e)).encode()[:4000])
            os._exit(1)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        why = f.read().decode("utf-8", "replace")
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise RuntimeError(why or "the sandbox self-test failed")


def pin_source(path):
    """Keeps this program's source in linecache for good: it runs as
    /dev/fd/5, which main closes, and a traceback through its frames (a
    job's logging.exception, traceback.print_exc, a v1 error's traceback)
    would otherwise open whatever a job's descriptor 5 is then: a pipe it
    blocked on until its time limit (outside attack round 15). An entry
    without an mtime is never checked again."""
    import linecache
    if linecache.getlines(path):
        size, _, lines, full = linecache.cache[path]
        linecache.cache[path] = (size, None, lines, full)


def main():
    global WARM
    os.umask(0o077)
    pin_source(__file__)
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
        CFG.update(cfg)
        global OOM
        OOM = OOMScore()
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
        names = cfg.get("preload")
        names = DEFAULT_PRELOAD if names is None else names
        if cfg.get("probe"):
            # What /info reports. Importing the preload is left to the warm
            # templates, which fail to start (and so the server) without it.
            send({"type": "ready", "python": python_info(names)})
            return
        if cfg["warm"]:
            preload(names, cfg["scratch"][0])
        cfg["warm_script"] = warm_script(names) if cfg["warm"] else None
        if cfg["warm_script"]:
            # Run the warm-up script here once, so that what a first
            # DataFrame initialises lazily (caches, lazy imports) is the
            # template's and every child inherits it.
            warm_child(cfg["warm_script"])
            if "numpy" in sys.modules:  # written_pages reads pagemap with it
                WARM = WarmPages(cfg)
        # Reseeding once here loads what reseeding needs, so that each job
        # child only rewrites its generators' state.
        reseed()
        gc.collect()
        # Hand the heap's free pages back (3 MiB after the imports): every
        # fork copies the page table entries of what is resident.
        libc.malloc_trim(0)
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
